import { describe, expect, it } from "vitest";
import { fromBase64, fromBase64Url, toBase32, toBase64, toBase64Url, toHex } from "../src/index.js";

const utf8 = (s: string) => new TextEncoder().encode(s);

describe("encodings", () => {
  it("match the RFC 4648 test vectors", () => {
    const vectors: Array<[string, string, string]> = [
      ["", "", ""],
      ["f", "Zg", "my"],
      ["fo", "Zm8", "mzxq"],
      ["foo", "Zm9v", "mzxw6"],
      ["foob", "Zm9vYg", "mzxw6yq"],
      ["fooba", "Zm9vYmE", "mzxw6ytb"],
      ["foobar", "Zm9vYmFy", "mzxw6ytboi"],
    ];
    for (const [plain, b64url, b32] of vectors) {
      expect(toBase64Url(utf8(plain))).toBe(b64url);
      expect(toBase32(utf8(plain))).toBe(b32);
      expect(fromBase64Url(b64url)).toEqual(utf8(plain));
    }
  });

  it("round-trip every byte value", () => {
    const all = new Uint8Array(256).map((_, i) => i);
    expect(fromBase64Url(toBase64Url(all))).toEqual(all);
    expect(fromBase64(toBase64(all))).toEqual(all);
    expect(toHex(all.subarray(250))).toBe("fafbfcfdfeff");
  });

  it("refuse non-canonical and foreign spellings", () => {
    expect(fromBase64Url("Zh")).toBeNull(); // stray low bits: "Zg" is the one spelling of "f"
    expect(fromBase64Url("Zg==")).toBeNull(); // padding
    expect(fromBase64Url("Z+8")).toBeNull(); // standard alphabet
    expect(fromBase64Url("Z")).toBeNull(); // impossible length
    expect(fromBase64("Zg")).toBeNull(); // unpadded
    expect(fromBase64("Zh==")).toBeNull();
    expect(fromBase64("Zg==")).toEqual(utf8("f"));
  });
});
