/**
 * Just enough XML for S3's request and response documents: a builder with escaping, and a small
 * non-validating parser for request bodies (CompleteMultipartUpload, Delete, CreateBucketConfiguration)
 * that keeps elements and text, drops namespaces' prefixes, and rejects anything malformed.
 */
import { malformedXml } from './errors.js';

export const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';

export function xmlEscape(s: string): string {
  return s.replace(/[<>&'"\r]/g, (c) =>
    c === '<'
      ? '&lt;'
      : c === '>'
        ? '&gt;'
        : c === '&'
          ? '&amp;'
          : c === '"'
            ? '&quot;'
            : c === "'"
              ? '&apos;'
              : '&#13;',
  );
}

/** A child element: `[name, text]`, `[name, children]`; undefined and false entries are skipped. */
export type XmlNode = [string, string | number | boolean | XmlChildren] | undefined | false;
export type XmlChildren = XmlNode[];

function render(nodes: XmlChildren): string {
  let out = '';
  for (const node of nodes) {
    if (!node) continue;
    const [name, value] = node;
    out += Array.isArray(value)
      ? `<${name}>${render(value)}</${name}>`
      : `<${name}>${xmlEscape(String(value))}</${name}>`;
  }
  return out;
}

/** A complete document with the S3 namespace on its root element. */
export function xmlDocument(root: string, children: XmlChildren, namespace = true): string {
  const ns = namespace ? ` xmlns="${S3_NAMESPACE}"` : '';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${ns}>${render(children)}</${root}>`;
}

export interface XmlElement {
  /** Local name (without a namespace prefix). */
  name: string;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (_all, e: string) => {
    if (e.startsWith('#')) {
      const cp = e.startsWith('#x') ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
      if (!(cp >= 0 && cp <= 0x10ffff)) throw malformedXml();
      return String.fromCodePoint(cp);
    }
    const v = ENTITIES[e];
    if (v === undefined) throw malformedXml();
    return v;
  });
}

/** Parses a document; throws `MalformedXML` if it is not well-formed. */
export function parseXml(text: string): XmlElement {
  let i = 0;
  const skipMisc = () => {
    for (;;) {
      while (i < text.length && /\s/.test(text[i]!)) i++;
      if (text.startsWith('<?', i)) {
        const end = text.indexOf('?>', i);
        if (end < 0) throw malformedXml();
        i = end + 2;
      } else if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end < 0) throw malformedXml();
        i = end + 3;
      } else return;
    }
  };
  const parseElement = (): XmlElement => {
    const m =
      /^<([A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/.exec(
        text.slice(i, i + 4096),
      );
    if (!m) throw malformedXml();
    i += m[0].length;
    const qname = m[1]!;
    const el: XmlElement = {
      name: qname.includes(':') ? qname.slice(qname.indexOf(':') + 1) : qname,
      children: [],
      text: '',
    };
    if (m[3] === '/') return el;
    for (;;) {
      const lt = text.indexOf('<', i);
      if (lt < 0) throw malformedXml();
      el.text += decodeEntities(text.slice(i, lt));
      i = lt;
      if (text.startsWith('</', i)) {
        const close = /^<\/([^\s>]+)\s*>/.exec(text.slice(i, i + 512));
        if (!close || close[1] !== qname) throw malformedXml();
        i += close[0].length;
        return el;
      }
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end < 0) throw malformedXml();
        i = end + 3;
      } else if (text.startsWith('<![CDATA[', i)) {
        const end = text.indexOf(']]>', i);
        if (end < 0) throw malformedXml();
        el.text += text.slice(i + 9, end);
        i = end + 3;
      } else {
        el.children.push(parseElement());
      }
    }
  };
  skipMisc();
  if (text[i] !== '<') throw malformedXml();
  const root = parseElement();
  skipMisc();
  if (i !== text.length) throw malformedXml();
  return root;
}

export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

export function childText(el: XmlElement, name: string): string | undefined {
  return child(el, name)?.text;
}
