/** One number in a row of tiles: what it is, its value, and a note that explains it. Use inside `<dl className="tiles">`. */
export function Tile({ term, value, note, testId }: { term: string; value: string; note?: string; testId?: string }) {
  return (
    <div className="tile" data-testid={testId}>
      <dt>{term}</dt>
      <dd>
        <span className="tile-value">{value}</span>
        {note && <span className="small muted block">{note}</span>}
      </dd>
    </div>
  );
}
