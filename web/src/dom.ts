/**
 * Building the page without a framework: elements made from plain values, text always
 * set as text (never parsed as HTML), so nothing a user typed can become markup.
 */
type Child = Node | string | number | null | undefined | false;
type Attribute = string | number | boolean | undefined | ((event: Event) => void);

/**
 * An element with its attributes and children. `onclick`-style entries become event
 * listeners, `true` an empty attribute, `false` and `undefined` no attribute at all.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Readonly<Record<string, Attribute>> = {},
  ...children: readonly Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else if (value !== false && value !== undefined) element.setAttribute(name, String(value));
  }
  element.append(...nodes(children));
  return element;
}

/** Replaces what `parent` shows. */
export function show(parent: Element, ...children: readonly Child[]): void {
  parent.replaceChildren(...nodes(children));
}

/** The children to insert, in order: nodes as they are, values as text, nothing for none. */
function nodes(children: readonly Child[]): (Node | string)[] {
  return children.flatMap((c) =>
    c === null || c === undefined || c === false ? [] : [c instanceof Node ? c : String(c)],
  );
}

/** "4 min 05 s" for a number of seconds. */
export function duration(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  const rest = Math.floor(seconds % 60);
  return minutes > 0 ? `${minutes} min ${String(rest).padStart(2, '0')} s` : `${rest} s`;
}

/** A time of day, with its date unless it is today, in the browser's locale. */
export function when(date: Date | undefined): string {
  if (!date) return '';
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === new Date().toDateString()) return time;
  return `${date.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' })} ${time}`;
}
