// Reads a CAS 2.0/3.0 validation answer (/proxyValidate, /serviceValidate):
//   <cas:serviceResponse><cas:authenticationSuccess><cas:user>u</cas:user>
//     <cas:attributes><cas:name>value</cas:name>...</cas:attributes>...
//   or <cas:authenticationFailure code="...">text</cas:authenticationFailure>
// Elements are matched by local name (any namespace prefix, or none), as servers differ. This is
// a small XML reader for that shape only: elements, attributes, text, CDATA, comments, the XML
// declaration and the five predefined and numeric entities. No DTDs (a DOCTYPE is refused, so
// there are no entity-expansion tricks), no external anything. Malformed input is an error,
// never a guess.

export interface CasSuccess {
  ok: true;
  user: string;
  /** Attribute name (local name) to its values, in order (CAS attributes may repeat). */
  attributes: Map<string, string[]>;
}

export interface CasFailure {
  ok: false;
  code: string;
  message: string;
}

export class CasXmlError extends Error {}

interface Element {
  name: string;
  attrs: Record<string, string>;
  children: Element[];
  text: string;
}

const MAX_DEPTH = 32;

function localName(qname: string): string {
  const i = qname.indexOf(':');
  return i < 0 ? qname : qname.slice(i + 1);
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos);|&/g, (m, e: string | undefined) => {
    if (e === undefined) throw new CasXmlError('bare & in text');
    switch (e) {
      case 'amp': return '&';
      case 'lt': return '<';
      case 'gt': return '>';
      case 'quot': return '"';
      case 'apos': return "'";
    }
    const cp = e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp === 0) throw new CasXmlError(`bad character reference ${m}`);
    return String.fromCodePoint(cp);
  });
}

const NAME = '[A-Za-z_][A-Za-z0-9_.:-]*';
const OPEN_TAG = new RegExp(`^<(${NAME})((?:\\s+${NAME}\\s*=\\s*(?:"[^"<]*"|'[^'<]*'))*)\\s*(/?)>`);
const ATTR = new RegExp(`(${NAME})\\s*=\\s*(?:"([^"<]*)"|'([^'<]*)')`, 'g');

function parseXml(xml: string): Element {
  let pos = 0;
  const skipMisc = () => {
    for (;;) {
      const m = /^\s+/.exec(xml.slice(pos));
      if (m) pos += m[0].length;
      if (xml.startsWith('<?', pos)) {
        const end = xml.indexOf('?>', pos);
        if (end < 0) throw new CasXmlError('unterminated processing instruction');
        pos = end + 2;
      } else if (xml.startsWith('<!--', pos)) {
        const end = xml.indexOf('-->', pos);
        if (end < 0) throw new CasXmlError('unterminated comment');
        pos = end + 3;
      } else if (xml.startsWith('<!', pos) && !xml.startsWith('<![CDATA[', pos)) {
        throw new CasXmlError('DOCTYPE and declarations are not accepted');
      } else return;
    }
  };
  const element = (depth: number): Element => {
    if (depth > MAX_DEPTH) throw new CasXmlError('nested too deeply');
    const m = OPEN_TAG.exec(xml.slice(pos));
    if (!m) throw new CasXmlError(`expected an element at offset ${pos}`);
    pos += m[0].length;
    const attrs: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const a of (m[2] ?? '').matchAll(ATTR)) attrs[localName(a[1]!)] = decodeEntities(a[2] ?? a[3] ?? '');
    const el: Element = { name: localName(m[1]!), attrs, children: [], text: '' };
    if (m[3] === '/') return el;
    for (;;) {
      const lt = xml.indexOf('<', pos);
      if (lt < 0) throw new CasXmlError(`unterminated element ${m[1]}`);
      el.text += decodeEntities(xml.slice(pos, lt));
      pos = lt;
      if (xml.startsWith('</', pos)) {
        const close = new RegExp(`^</(${NAME})\\s*>`).exec(xml.slice(pos));
        if (!close || close[1] !== m[1]) throw new CasXmlError(`mismatched end tag for ${m[1]}`);
        pos += close[0].length;
        return el;
      }
      if (xml.startsWith('<![CDATA[', pos)) {
        const end = xml.indexOf(']]>', pos);
        if (end < 0) throw new CasXmlError('unterminated CDATA');
        el.text += xml.slice(pos + 9, end);
        pos = end + 3;
      } else if (xml.startsWith('<!--', pos) || xml.startsWith('<?', pos) || xml.startsWith('<!', pos)) {
        skipMisc();
      } else {
        el.children.push(element(depth + 1));
      }
    }
  };
  skipMisc();
  const root = element(0);
  skipMisc();
  if (pos !== xml.length) throw new CasXmlError('content after the root element');
  return root;
}

/** The outcome a CAS server reported; throws CasXmlError when the answer is not one. */
export function parseCasResponse(xml: string): CasSuccess | CasFailure {
  const root = parseXml(xml.replace(/^\uFEFF/, ''));
  if (root.name !== 'serviceResponse') throw new CasXmlError(`unexpected root element ${root.name}`);
  const failure = root.children.find((c) => c.name === 'authenticationFailure');
  if (failure) return { ok: false, code: failure.attrs.code ?? 'UNKNOWN', message: failure.text.trim() };
  const success = root.children.find((c) => c.name === 'authenticationSuccess');
  if (!success) throw new CasXmlError('neither authenticationSuccess nor authenticationFailure');
  const user = success.children.find((c) => c.name === 'user')?.text.trim();
  if (!user) throw new CasXmlError('authenticationSuccess without a user');
  const attributes = new Map<string, string[]>();
  for (const a of success.children.find((c) => c.name === 'attributes')?.children ?? []) {
    const list = attributes.get(a.name) ?? [];
    list.push(a.text.trim());
    attributes.set(a.name, list);
  }
  return { ok: true, user, attributes };
}
