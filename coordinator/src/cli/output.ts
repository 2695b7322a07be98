/** Where a command writes; tests pass their own to capture it. */
export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Like `out`, but waits while the reader is behind: for commands that write without bound (`coral export`). */
  write?: (text: string) => Promise<void>;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  write: (text) =>
    new Promise<void>((resolve) => {
      if (process.stdout.write(text)) resolve();
      else process.stdout.once("drain", resolve);
    }),
};

/** A command's answer to the top level: the exit code it wants. */
export type ExitCode = 0 | 1 | 2;
