/** A segmentation (outlining) model's results: Dice with its range, IoU, HD95, lesions found, normal images left empty. */
import type { Evaluation, EvaluationSample } from '../api/types';
import { percent, plural } from '../lib/format';
import { dice, diceBinLabel, histogramBins, MODEL_DICE_IN_WORDS, rangeInWords, segmentationSummary } from '../lib/segmentation';
import { BarChart } from './charts';
import { Tile } from './Tile';

export function SegmentationResult({ evaluation, title = 'How well it outlines', caption, names }: {
  evaluation: Evaluation;
  title?: string;
  caption?: string;
  /** File names by image id (a job's samples carry them; the check itself reports ids only). */
  names?: Map<string, string>;
}) {
  const ev = evaluation;
  const d = ev.detection;
  const lesions = d ? d.found + d.missed : 0;
  const bins = histogramBins(ev.dice_histogram);
  const n = ev.images ?? ev.n;
  return (
    <section className="card" aria-labelledby="segmentation-result-title" data-testid="segmentation-result">
      <h2 id="segmentation-result-title">{title}</h2>
      <p className="small muted">
        {caption ?? `Measured on ${n != null ? `${n} ` : ''}final-check images: patients the model never saw while learning.`}{' '}
        {MODEL_DICE_IN_WORDS}
      </p>
      {(ev.warnings ?? []).map((w) => <div key={w} className="notice notice-warning">{w}</div>)}
      <ul className="summary">
        {segmentationSummary(ev).map((line) => <li key={line}>{line}</li>)}
      </ul>
      <dl className="tiles">
        <Tile term="Overlap with the expert’s outline (Dice)" value={dice(ev.dice)}
          note={[rangeInWords(ev.dice_ci), 'average over all check images; 1 is perfect'].filter(Boolean).join('; ')} testId="tile-dice" />
        {ev.lesion_dice != null && (
          <Tile term="Overlap on images with a lesion (Dice)" value={dice(ev.lesion_dice)}
            note={rangeInWords(ev.lesion_dice_ci) ?? `${plural(ev.lesion_images ?? 0, 'image')} with something to outline`} />
        )}
        {ev.iou != null && (
          <Tile term="Shared area (IoU)" value={dice(ev.iou)} note="the overlap divided by the area either outline covers; stricter than Dice, 1 is perfect" />
        )}
        {ev.hd95_median != null && (
          <Tile term="Distance between the outlines (HD95)" value={`${ev.hd95_median.toFixed(1)} pixels`}
            note="95 % of the model’s outline lies within this distance of the expert’s (median over images); lower is better" />
        )}
        {d && lesions > 0 && (
          <Tile term="Lesions found" value={`${d.found} of ${lesions}`} testId="tile-lesions"
            note={`${d.missed} missed; ${plural(d.false, 'area')} drawn where there is no lesion${d.false_per_image != null ? ` (${d.false_per_image.toFixed(2)} per image)` : ''}`} />
        )}
        {(ev.empty_images ?? 0) > 0 && ev.empty_correct_fraction != null && (
          <Tile term="Normal images correctly left empty" value={percent(ev.empty_correct_fraction)} testId="tile-empty"
            note={`of ${plural(ev.empty_images!, 'image')} with nothing to outline`} />
        )}
      </dl>
      <div className="grid-2">
        {bins.length > 0 && (
          <BarChart title="How many check images reached each Dice" unit="images" testId="dice-histogram"
            bins={bins.map((b) => ({ name: diceBinLabel(b), count: b.count }))}
            caption="Each bar counts the check images whose outline overlap (Dice) falls in that range. Most images should be near 1." />
        )}
        {(ev.worst?.length ?? 0) > 0 ? (
          <div data-testid="worst-cases">
            <h3 className="h4">The hardest check images</h3>
            <p className="small muted">The images where the model’s outline and the expert’s differ most: look at these first.</p>
            <ol className="small">
              {ev.worst!.map((w) => (
                <li key={String(w.image_id)}>
                  {w.filename ?? names?.get(String(w.image_id)) ?? `Image ${w.image_id}`}: Dice {dice(w.dice)}
                  {w.has_finding === false ? (w.drew_something ? ' (a normal image where the model drew something)' : ' (a normal image)') : ''}
                  {w.has_finding && w.drew_something === false ? ' (the model drew nothing on this lesion)' : ''}
                </li>
              ))}
            </ol>
          </div>
        ) : (ev.worst_dice?.length ?? 0) > 0 && (
          <div data-testid="worst-dice">
            <h3 className="h4">The hardest check images</h3>
            <p className="small">The lowest overlaps (Dice) among the check images: {ev.worst_dice!.map((v) => dice(v)).join(', ')}.</p>
            <p className="small muted">Which images they were stays at the hospital that checked the model.</p>
          </div>
        )}
      </div>
    </section>
  );
}

/** What the colours of a segmentation overlay mean (workers/pollen_agent/ml/segmentation/overlay.py). */
export function OutlineLegend() {
  return (
    <p className="small muted" data-testid="outline-legend">
      Yellow: the model’s outline. Light blue: the expert’s outline. Where they run together, the model got it right.
    </p>
  );
}

/** Final-check images with the model's outline (and the expert's) drawn over each, and that image's Dice. */
export function OutlineGallery({ samples }: { samples: EvaluationSample[] }) {
  return (
    <ul className="gallery mask-gallery" data-testid="sample-outlines">
      {samples.map((s) => (
        <li key={String(s.image_id)} className="gallery-item">
          <figure>
            {s.overlay_url ? (
              <img src={s.overlay_url} alt={`The model’s outline over check image ${s.filename ?? s.image_id}`} loading="lazy" width={160} height={160} />
            ) : (
              <div className="heatmap-missing">Outline not available for this image</div>
            )}
            <figcaption className="small">
              <span className="block">{s.filename ?? `Image ${s.image_id}`}</span>
              {s.dice != null && <span className="block">Overlap with the expert (Dice): <strong>{dice(s.dice)}</strong></span>}
            </figcaption>
          </figure>
        </li>
      ))}
    </ul>
  );
}
