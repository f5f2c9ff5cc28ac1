// Hashes, RFC 6962 inclusion proofs and C2SP signed notes, checked in the
// browser with WebCrypto. Nothing here trusts the server: every value is
// recomputed from what it sent.

const enc = new TextEncoder();

export function hasWebCrypto() {
  return typeof crypto !== "undefined" && !!crypto.subtle;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export function toHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function fromHex(s) {
  if (!/^([0-9a-f]{2})*$/.test(s)) throw new Error(`not lowercase hex: ${s.slice(0, 16)}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function fromBase64(s) {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function toBase64(b) {
  return btoa(String.fromCharCode(...b));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// hashText is the lowercase hex SHA-256 of a string's UTF-8 bytes.
export async function hashText(s) {
  return toHex(await sha256(enc.encode(s)));
}

// leafHash is the Merkle leaf of an event: SHA-256(0x00 ‖ its 32 hash bytes).
export async function leafHash(eventHash) {
  return sha256(concat(Uint8Array.of(0), eventHash));
}

// rootFromInclusion runs RFC 9162 §2.1.3.2: the root that proof and leaf
// imply for leaf index of a tree of size.
export async function rootFromInclusion(index, size, leaf, proof) {
  if (index >= size) throw new Error(`leaf index ${index} is outside the tree of size ${size}`);
  let fn = BigInt(index);
  let sn = BigInt(size - 1);
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error("the inclusion proof is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the inclusion proof is shorter than the tree is deep");
  return r;
}

// parseVerifierKey reads a note verifier key, name+hash+base64(0x01 ‖ key).
export async function parseVerifierKey(vkey) {
  // The name cannot hold "+"; the base64 key can.
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(vkey.trim());
  if (!m) throw new Error("the verifier key is not name+hash+key");
  const [, name, hash, b64] = m;
  const raw = fromBase64(b64);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error("the verifier key is not an Ed25519 key");
  // The key hash binds the name to the key: SHA-256(name ‖ "\n" ‖ 0x01 ‖ key)[:4].
  const id = (await sha256(concat(enc.encode(name + "\n"), raw))).slice(0, 4);
  if (toHex(id) !== hash) throw new Error("the verifier key's hash does not match its name and key");
  return { name, id, pub: raw.slice(1), text: vkey.trim() };
}

// hasEd25519 reports whether WebCrypto verifies Ed25519 here.
export async function hasEd25519() {
  if (!hasWebCrypto()) return false;
  try {
    await crypto.subtle.importKey("raw", new Uint8Array(32).fill(1), { name: "Ed25519" }, false, ["verify"]);
    return true;
  } catch {
    return false;
  }
}

// openNote checks a signed note's signature by key and returns its text.
export async function openNote(signed, key) {
  const cut = signed.lastIndexOf("\n\n");
  if (cut < 0) throw new Error("the checkpoint is not a signed note");
  const text = signed.slice(0, cut + 1);
  const sigLines = signed.slice(cut + 2).split("\n").filter((l) => l !== "");
  let pub;
  try {
    pub = await crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    throw new Error("this browser's WebCrypto cannot verify Ed25519 signatures");
  }
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new Error(`malformed signature line: ${line.slice(0, 40)}`);
    if (m[1] !== key.name) continue;
    const sig = fromBase64(m[2]);
    if (sig.length !== 68 || !equal(sig.slice(0, 4), key.id)) continue;
    if (await crypto.subtle.verify({ name: "Ed25519" }, pub, sig.slice(4), enc.encode(text))) return text;
    throw new Error(`the checkpoint signature by ${key.name} is invalid`);
  }
  throw new Error(`the checkpoint carries no signature by ${key.name}`);
}

// parseCheckpoint reads a C2SP tlog-checkpoint body: origin, size, root.
export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || !/^[0-9]+$/.test(lines[1])) throw new Error("malformed checkpoint");
  const root = fromBase64(lines[2]);
  if (root.length !== 32) throw new Error("malformed checkpoint root hash");
  return { origin: lines[0], size: Number(lines[1]), root };
}

export { equal };
