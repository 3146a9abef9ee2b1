// Building the page's DOM: a small `el` helper (text is always text, never HTML), badges and
// lookups. No framework: the page is a few tables and forms.

// Set as attributes: these have no writable property of the same name.
const ATTRIBUTES = new Set(['role', 'for', 'style', 'list']);

type Attrs = Record<string, string | number | boolean | ((e: Event) => void) | null | undefined>;
type Child = Node | string | number | null | undefined | false | Child[];

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = String(v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-') || k.startsWith('aria-') || ATTRIBUTES.has(k)) node.setAttribute(k, String(v));
    else if (k === 'innerHTML' || k === 'outerHTML') throw new Error('el() makes text, never HTML');
    else (node as unknown as Record<string, unknown>)[k] = v;
  }
  append(node, children);
  return node;
}

function append(node: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function $<T extends HTMLElement = HTMLElement>(selector: string): T {
  const node = document.querySelector<T>(selector);
  if (!node) throw new Error(`the page has no ${selector}`);
  return node;
}

export const badge = (state: string, title?: string) => el('span', { class: `badge ${state}`, title }, state);

export const muted = (text: string) => el('span', { class: 'muted' }, text);

/** Replaces a node's children; null and false children are skipped. */
export function fill(node: Node & ParentNode, ...children: Child[]): void {
  node.replaceChildren();
  append(node, children);
}

/** Replaces the main view's content. */
export function show(...children: Child[]): void {
  fill($('#view'), ...children);
}

export function card(attrs: Attrs, ...children: Child[]): HTMLDivElement {
  return el('div', { ...attrs, class: `card${attrs.class ? ` ${attrs.class}` : ''}` }, ...children);
}
