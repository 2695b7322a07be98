/**
 * JSON.parse keeps the last of two equal keys; other parsers keep the first, or fail. A
 * signed body with a key twice could then mean one thing to discovery and another to a
 * client verifying the same bytes, so Coral refuses such bodies outright.
 */

/**
 * The first key that appears twice in one object of `text`, or undefined. `text` must be valid
 * JSON (parse it first): this only walks its tokens. Keys are compared decoded, so `"a"` and
 * `"\u0061"` are the same key.
 */
export function duplicateJsonKey(text: string): string | undefined {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const open: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      const keys = open.at(-1);
      if (keys && expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (ch === "{") {
      open.push(new Set());
      expectKey = true;
    } else if (ch === "[") {
      open.push(null);
      expectKey = false;
    } else if (ch === "}" || ch === "]") {
      open.pop();
      expectKey = false;
    } else if (ch === ",") {
      expectKey = open.at(-1) != null;
    } else if (ch === ":") {
      expectKey = false;
    }
  }
  return undefined;
}
