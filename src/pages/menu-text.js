// Shared by the console and the widget.

/** A menu's text without the numbered option lines ("1. Vendas") the hub adds for text-only
 *  channels: here the options are drawn as buttons. */
export function menuText(text, options) {
  if (!options?.length) return text;
  const titles = new Set(options.map((o) => o.title.trim()));
  const lines = text.split('\n');
  while (lines.length > 1) {
    const m = /^\s*\d+\s*[.)-]\s*(.+?)\s*$/.exec(lines[lines.length - 1]);
    if (!m || !titles.has(m[1])) break;
    lines.pop();
  }
  return lines.join('\n').trimEnd();
}
