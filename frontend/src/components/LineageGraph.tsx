import type { Lineage, LineageNode } from '../api/types';
import { Link } from '../router';

export interface PlacedNode {
  key: string;
  node: LineageNode | null; // null: the model this page is about
  title: string;
  subtitle: string;
  x: number;
  y: number;
  current: boolean;
  href: string | null;
}

export interface PlacedEdge {
  from: string;
  to: string;
}

export const NODE_W = 190;
export const NODE_H = 52;
const GAP_X = 40;
const GAP_Y = 28;

/**
 * Lay the lineage out top to bottom: the oldest ancestor first, this model, then each generation of
 * descendants on its own row, centred. Parents form a chain (a model has one parent); children of
 * generation g hang below generation g-1.
 */
export function layoutLineage(lineage: Lineage, current: { title: string; subtitle: string }) {
  const rows: PlacedNode[][] = [];
  const ancestors = [...lineage.parents].reverse(); // API lists the nearest parent first
  ancestors.forEach((node, i) => rows.push([place(node, `p${i}`)]));
  rows.push([{ key: 'self', node: null, title: current.title, subtitle: current.subtitle, x: 0, y: 0, current: true, href: null }]);
  const byGeneration = new Map<number, LineageNode[]>();
  for (const node of lineage.descendants) {
    const g = node.generation ?? 1;
    byGeneration.set(g, [...(byGeneration.get(g) ?? []), node]);
  }
  [...byGeneration.keys()].sort((a, b) => a - b).forEach((g) => {
    rows.push(byGeneration.get(g)!.map((node, i) => place(node, `d${g}-${i}`)));
  });
  const widest = Math.max(...rows.map((r) => r.length));
  const width = widest * NODE_W + (widest - 1) * GAP_X;
  rows.forEach((row, r) => {
    const rowWidth = row.length * NODE_W + (row.length - 1) * GAP_X;
    const left = (width - rowWidth) / 2;
    row.forEach((n, i) => {
      n.x = left + i * (NODE_W + GAP_X);
      n.y = r * (NODE_H + GAP_Y);
    });
  });
  const edges: PlacedEdge[] = [];
  for (let r = 1; r < rows.length; r++) {
    // Every node hangs from the row above: ancestors and self form a chain; descendants of generation
    // g are drawn from the generation above (the API does not say which sibling is the parent).
    const parent = rows[r - 1].length === 1 ? rows[r - 1][0] : null;
    for (const child of rows[r]) if (parent) edges.push({ from: parent.key, to: child.key });
  }
  return { nodes: rows.flat(), edges, width, height: rows.length * NODE_H + (rows.length - 1) * GAP_Y };
}

function place(node: LineageNode, key: string): PlacedNode {
  if (!node.visible) {
    return { key, node, title: node.description || 'A model at another site', subtitle: 'details not shared with you', x: 0, y: 0, current: false, href: null };
  }
  const version = node.version_number ? ` · version ${node.version_number}` : '';
  return {
    key,
    node,
    title: node.name || 'Unnamed model',
    subtitle: `${node.site ?? ''}${version}`,
    x: 0,
    y: 0,
    current: false,
    href: node.published_model ? `/marketplace/models/${node.published_model}` : null,
  };
}

const clip = (text: string, max = 22) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** The family tree of a model: where it started from and what others built on it. */
export function LineageGraph({ lineage, title, subtitle }: { lineage: Lineage; title: string; subtitle: string }) {
  const { nodes, edges, width, height } = layoutLineage(lineage, { title, subtitle });
  const at = new Map(nodes.map((n) => [n.key, n]));
  const pad = 4;
  const description =
    `${lineage.parents.length ? `Built on ${lineage.parents.length} earlier model${lineage.parents.length > 1 ? 's' : ''}` : 'Not built on another model in the network'}; ` +
    `${lineage.descendants.length ? `${lineage.descendants.length} model${lineage.descendants.length > 1 ? 's were' : ' was'} built on it.` : 'no model has been built on it yet.'}`;
  return (
    <figure className="chart lineage" data-testid="lineage-graph">
      <svg viewBox={`${-pad} ${-pad} ${width + 2 * pad} ${height + 2 * pad}`} style={{ width: `${width + 2 * pad}px`, maxWidth: '100%' }}
        role="img" aria-labelledby="lineage-title lineage-desc">
        <title id="lineage-title">Lineage of {title}</title>
        <desc id="lineage-desc">{description}</desc>
        {edges.map((e) => {
          const a = at.get(e.from)!;
          const b = at.get(e.to)!;
          const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y;
          return <path key={`${e.from}-${e.to}`} className="lineage-edge" d={`M${x1},${y1} C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2} ${x2},${y2}`} />;
        })}
        {nodes.map((n) => {
          const box = (
            <g key={n.key} transform={`translate(${n.x},${n.y})`} className={`lineage-node ${n.current ? 'lineage-current' : ''} ${n.node && !n.node.visible ? 'lineage-hidden' : ''}`}>
              <rect width={NODE_W} height={NODE_H} rx={8} />
              <text x={10} y={21} className="lineage-title">{clip(n.title)}</text>
              <text x={10} y={39} className="lineage-sub">{clip(n.subtitle, 28)}</text>
            </g>
          );
          return n.href ? (
            <a key={n.key} href={n.href} aria-label={`${n.title}, ${n.subtitle}`}>
              {box}
            </a>
          ) : (
            box
          );
        })}
      </svg>
      <figcaption className="small muted">{description}</figcaption>
      {nodes.some((n) => n.href) && (
        <ul className="small lineage-links">
          {nodes.filter((n) => n.href).map((n) => (
            <li key={n.key}>
              <Link to={n.href!}>{n.title}</Link> ({n.subtitle})
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}
