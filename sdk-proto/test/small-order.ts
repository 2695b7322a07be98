/**
 * Every 32-byte encoding of a small-order Ed25519 point (as listed in "Taming the many
 * EdDSAs", Chalkias et al., 2020, and refused by libsodium): the 8 points of order 1, 2,
 * 4 and 8, then the non-canonical spellings of some of them (x = 0 with the sign bit set,
 * and y = p, p + 1, which decode as 0 and 1).
 */
const hex = (text: string) => Uint8Array.from(text.match(/../g) ?? [], (byte) => Number.parseInt(byte, 16));
const ff = "ff".repeat(30);

export interface NamedPoint {
  name: string;
  bytes: Uint8Array;
}

export const smallOrderPoints: { canonical: NamedPoint[]; nonCanonical: NamedPoint[] } = {
  canonical: [
    { name: "identity", bytes: hex(`01${"00".repeat(31)}`) },
    { name: "order 2 (y = -1)", bytes: hex(`ec${ff}7f`) },
    { name: "order 4 (y = 0, x positive)", bytes: hex("00".repeat(32)) },
    { name: "order 4 (y = 0, x negative)", bytes: hex(`${"00".repeat(31)}80`) },
    { name: "order 8 (a)", bytes: hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05") },
    { name: "order 8 (a, x negative)", bytes: hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85") },
    { name: "order 8 (b)", bytes: hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a") },
    { name: "order 8 (b, x negative)", bytes: hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa") },
  ],
  nonCanonical: [
    { name: "identity, sign bit set", bytes: hex(`01${"00".repeat(30)}80`) },
    { name: "order 2, sign bit set", bytes: hex(`ec${ff}ff`) },
    { name: "y = p (0)", bytes: hex(`ed${ff}7f`) },
    { name: "y = p (0), sign bit set", bytes: hex(`ed${ff}ff`) },
    { name: "y = p + 1 (1)", bytes: hex(`ee${ff}7f`) },
    { name: "y = p + 1 (1), sign bit set", bytes: hex(`ee${ff}ff`) },
  ],
};
