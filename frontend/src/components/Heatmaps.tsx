import type { EvaluationSample } from '../api/types';
import { percent } from '../lib/format';

/** What a heatmap shows, in words a clinician uses. */
export function HeatmapLegend() {
  return (
    <p className="small muted heatmap-legend">
      <span className="legend-ramp" aria-hidden="true" /> Bright colours (orange, yellow) mark the parts of the image that
      weighed most in the model’s answer; dark purple, the parts it hardly used. A heatmap shows where the model
      looked, not whether it is right.
    </p>
  );
}

/** Final-check images with the model's answer and its heatmap overlay. */
export function SampleGallery({ samples }: { samples: EvaluationSample[] }) {
  return (
    <ul className="gallery" data-testid="sample-heatmaps">
      {samples.map((s) => {
        const right = s.label != null && s.predicted != null && String(s.label) === String(s.predicted);
        return (
          <li key={String(s.image_id)} className="gallery-item">
            <figure>
              {s.overlay_url ? (
                <img src={s.overlay_url} alt={`Heatmap of where the model looked on check image ${s.filename || s.image_id}, labelled “${s.label}”`}
                  loading="lazy" width={160} height={160} />
              ) : (
                <div className="heatmap-missing">Heatmap not available for this image</div>
              )}
              <figcaption className="small">
                {s.filename && <span className="block long-name" title={s.filename}>{s.filename}</span>}
                <span className="block">Labelled: <strong>{String(s.label ?? '—')}</strong></span>
                <span className="block">
                  Model says: <strong>{String(s.predicted ?? '—')}</strong>
                  {s.probability != null ? ` (${percent(s.probability)} sure)` : ''}
                </span>
                {s.label != null && s.predicted != null && (
                  <span className={`badge ${right ? 'badge-ok' : 'badge-bad'}`}>{right ? 'agrees with the label' : 'disagrees with the label'}</span>
                )}
              </figcaption>
            </figure>
          </li>
        );
      })}
    </ul>
  );
}
