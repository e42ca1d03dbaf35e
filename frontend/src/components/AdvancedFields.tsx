/** Number boxes for the settings that most people leave alone; an empty box means "the recommended value". */

/** [name, label, help, step] of one setting. */
export type AdvancedField<K extends string> = [K, string, string, string];

export const SHARED_ADVANCED = {
  input_size: ['input_size', 'Image size (pixels)', 'Images are resized to this square size before learning.', '1'],
  learning_rate: ['learning_rate', 'Learning speed (learning rate)', 'Smaller is slower but steadier.', 'any'],
  batch_size: ['batch_size', 'Images per step (batch size)', 'Lower it if training runs out of memory.', '1'],
  seed: ['seed', 'Random seed', 'Use the same number to repeat a run exactly.', '1'],
} as const satisfies Record<string, AdvancedField<string>>;

/** The boxes that were filled in, as numbers for the API. */
export function filledIn<K extends string>(fields: AdvancedField<K>[], values: Record<K, string>): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const [key] of fields) if (values[key].trim()) out[key] = Number(values[key]);
  return out;
}

export function AdvancedFields<K extends string>({ idPrefix, fields, values, onChange, errorFor }: {
  idPrefix: string;
  fields: AdvancedField<K>[];
  values: Record<K, string>;
  onChange: (values: Record<K, string>) => void;
  /** The hub's sentence about one setting, if it refused it. */
  errorFor: (key: K) => string | undefined;
}) {
  return (
    <>
      {fields.map(([key, label, help, step]) => {
        const id = `${idPrefix}-${key}`;
        const error = errorFor(key);
        return (
          <div className="field" key={key}>
            <label htmlFor={id}>{label}</label>
            <input id={id} type="number" min={0} step={step} inputMode="decimal" value={values[key]}
              onChange={(e) => onChange({ ...values, [key]: e.target.value })} aria-describedby={`${id}-help`}
              aria-invalid={error ? true : undefined} />
            <p className="small muted" id={`${id}-help`}>{help}</p>
            {error && <p className="field-error">{error}</p>}
          </div>
        );
      })}
    </>
  );
}
