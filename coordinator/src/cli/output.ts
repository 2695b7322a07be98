/** Where a command writes; tests pass their own to capture it. */
export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** A command's answer to the top level: the exit code it wants. */
export type ExitCode = 0 | 1 | 2;
