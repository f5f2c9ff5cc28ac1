// Canonical JSON as audit-stream hashes it: Python's
// json.dumps(body, sort_keys=True, separators=(",", ":")) with ASCII escaping.
//
// JSON.parse is not used: it turns every number into a double, which would
// change 12345678901234567890 or 1e+16. The server already serves payloads in
// canonical form, so the number tokens are kept exactly as received.

// Value tree: {t:"obj", keys:Map<string,value>} (last duplicate wins),
// {t:"arr", items:[]}, {t:"str", v}, {t:"num", raw}, {t:"lit", raw}.

export class ParseError extends Error {}

export function parse(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const fail = (msg) => {
    throw new ParseError(`${msg} at offset ${i}`);
  };
  const value = (depth) => {
    if (depth > 512) fail("nesting too deep");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const keys = new Map();
      ws();
      if (text[i] === "}") {
        i++;
        return { t: "obj", keys };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a string key");
        const k = string();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        keys.delete(k); // the last duplicate wins, as in Python
        keys.set(k, value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return { t: "obj", keys };
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items = [];
      ws();
      if (text[i] === "]") {
        i++;
        return { t: "arr", items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return { t: "arr", items };
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return { t: "str", v: string() };
    for (const lit of ["true", "false", "null"]) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return { t: "lit", raw: lit };
      }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 1100));
    if (!m || m[0] === "" || m[0] === "-") fail("unexpected character");
    i += m[0].length;
    return { t: "num", raw: m[0] };
  };
  const string = () => {
    i++; // opening quote
    let out = "";
    let start = i;
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      const e = text[i + 1];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (e in simple) {
        out += simple[e];
        i += 2;
      } else if (e === "u") {
        const hex = text.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
      } else fail("bad escape");
      start = i;
    }
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("trailing data");
  return v;
}

// compareCodePoints orders strings by Unicode code point, as Python sorts
// str keys. (JavaScript's < compares UTF-16 units, which differs for
// characters beyond U+FFFF against U+E000–U+FFFF.)
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate sorts above every BMP character in code point order.
    if (x >= 0xd800 && x <= 0xdfff) x += 0x2000;
    else if (x >= 0xe000) x -= 0x800;
    if (y >= 0xd800 && y <= 0xdfff) y += 0x2000;
    else if (y >= 0xe000) y -= 0x800;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

const named = { 0x22: '\\"', 0x5c: "\\\\", 0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t", 0x08: "\\b", 0x0c: "\\f" };

// quote escapes like Python's json ensure_ascii: printable ASCII stays,
// everything else is \uXXXX of its UTF-16 units, lowercase hex.
export function quote(s) {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    out += named[c] ?? "\\u" + c.toString(16).padStart(4, "0");
    start = i + 1;
  }
  return out + s.slice(start) + '"';
}

export function canonical(v) {
  switch (v.t) {
    case "obj": {
      const keys = [...v.keys.keys()].sort(compareCodePoints);
      return "{" + keys.map((k) => quote(k) + ":" + canonical(v.keys.get(k))).join(",") + "}";
    }
    case "arr":
      return "[" + v.items.map(canonical).join(",") + "]";
    case "str":
      return quote(v.v);
    default:
      return v.raw;
  }
}

// pretty prints for reading, keeping the server's key order and number text.
export function pretty(v, indent = "") {
  const inner = indent + "  ";
  switch (v.t) {
    case "obj": {
      if (v.keys.size === 0) return "{}";
      const parts = [...v.keys].map(([k, x]) => inner + quote(k) + ": " + pretty(x, inner));
      return "{\n" + parts.join(",\n") + "\n" + indent + "}";
    }
    case "arr":
      if (v.items.length === 0) return "[]";
      return "[\n" + v.items.map((x) => inner + pretty(x, inner)).join(",\n") + "\n" + indent + "]";
    case "str":
      return JSON.stringify(v.v);
    default:
      return v.raw;
  }
}

// The fields of an event that its hash covers.
export const hashedFields = ["event_id", "timestamp", "kind", "source", "payload", "prev_hash"];

// eventBody is the canonical text the event's hash is taken over.
export function eventBody(ev) {
  const keys = new Map();
  for (const f of hashedFields) {
    if (!ev.keys.has(f)) throw new ParseError(`event has no ${f}`);
    keys.set(f, ev.keys.get(f));
  }
  return canonical({ t: "obj", keys });
}

// field returns the plain value of a top-level string or number field.
export function field(ev, name) {
  const v = ev.keys.get(name);
  if (!v) return undefined;
  return v.t === "str" ? v.v : v.raw;
}

// lookup follows a dotted path (a.b.0) into a value tree.
export function lookup(v, path) {
  for (const part of path.split(".")) {
    if (v?.t === "obj") v = v.keys.get(part);
    else if (v?.t === "arr" && /^[0-9]+$/.test(part)) v = v.items[Number(part)];
    else return undefined;
  }
  return v;
}
