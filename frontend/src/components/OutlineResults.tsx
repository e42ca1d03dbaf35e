/**
 * An outlining (segmentation) model's answers on the Apply page: per image, the outline over the
 * image (an opacity slider fades it in and out) or side by side with the image, the probability and
 * uncertainty maps instead, the outlined area in words and the mask to download.
 */
import { useCallback, useEffect, useMemo, useRef, useState, type MouseEvent } from 'react';
import { api } from '../api/client';
import type { OutlinePictures, Prediction, PredictionResult, Thumbnails } from '../api/types';
import { useSeen } from '../lib/seen';
import { areaInWords, classNumbersInWords, outlinedClasses, uncertaintyInWords } from '../lib/segmentation';

/** Links to an answer's pictures, kept fresh by the page (they last a few minutes). */
export interface PictureLinks {
  pictures: (r: PredictionResult) => OutlinePictures;
  /** Ask the hub for fresh links: `force` even when it was asked a moment ago (a download). */
  refresh: (force?: boolean) => Promise<Map<string, PredictionResult> | null>;
  /** When the links in hand were made (ms since the epoch). */
  linkedAt: number;
}

type Layer = 'overlay' | 'probability' | 'uncertainty';

/** The hub asks the site for links that last 300 s: a download older than this asks for a fresh one first. */
const LINK_FRESH_MS = 240_000;

const LAYERS: { value: Layer; label: string }[] = [
  { value: 'overlay', label: 'The outline' },
  { value: 'probability', label: 'How likely (probability map)' },
  { value: 'uncertainty', label: 'How unsure (uncertainty map)' },
];

function layerAlt(layer: Layer, name: string, classes: string): string {
  if (layer === 'probability') return `Map of how likely each part of ${name} is to be ${classes}: bright is likely`;
  if (layer === 'uncertainty') return `Map of where the model was unsure on ${name}: bright is unsure`;
  return `The model’s outline over ${name}`;
}

function LayerLegend({ layer, classes }: { layer: Layer; classes: string }) {
  const text = {
    overlay: 'Yellow: the model’s outline.',
    probability: `Bright yellow: the model is sure this part is ${classes}; dark purple to black: sure it is not.`,
    uncertainty: 'Bright yellow: the model hesitated here; dark purple: it was sure, one way or the other.',
  }[layer];
  return <p className="small muted" data-testid="outline-layer-legend">{text}</p>;
}

export function OutlineResults({ prediction, names, datasetId, links }: {
  prediction: Prediction;
  names: Map<string, string>;
  /** The dataset that holds the images (for the plain image under the outline); null: the outline alone. */
  datasetId: number | null;
  links: PictureLinks;
}) {
  const [layer, setLayer] = useState<Layer>('overlay');
  const [sideBySide, setSideBySide] = useState(false);
  const [opacity, setOpacity] = useState(100);
  const plain = usePlainImages(datasetId);
  const classes = outlinedClasses(prediction.label_names);
  const classWords = classes.join(' or ') || 'a finding';
  const what = LAYERS.find((l) => l.value === layer)!.label.toLowerCase();
  return (
    <>
      <fieldset className="outline-controls" data-testid="outline-controls">
        <legend className="h4">How to show every image below</legend>
        <div className="choices-inline" role="radiogroup" aria-label="Show">
          {LAYERS.map((l) => (
            <label key={l.value} className="check">
              <input type="radio" name="outline-layer" value={l.value} checked={layer === l.value} onChange={() => setLayer(l.value)} /> {l.label}
            </label>
          ))}
        </div>
        {datasetId != null ? (
          <div className="choices-inline">
            <label className="check">
              <input type="checkbox" checked={sideBySide} onChange={(e) => setSideBySide(e.target.checked)} /> Side by side with the image
            </label>
            {!sideBySide && (
              <span className="field-range">
                <label htmlFor="outline-opacity">Strength over the image</label>
                <input id="outline-opacity" type="range" min={0} max={100} step={5} value={opacity}
                  aria-valuetext={`${opacity} %: ${opacity === 0 ? 'the image alone' : opacity === 100 ? `${what} at full strength` : `${what} faded`}`}
                  onChange={(e) => setOpacity(Number(e.target.value))} />
                <span className="small" aria-hidden="true">{opacity} %</span>
              </span>
            )}
          </div>
        ) : (
          <p className="small muted">These images are not in a dataset, so the image without the outline cannot be shown beside it.</p>
        )}
        <LayerLegend layer={layer} classes={classWords} />
      </fieldset>
      <ul className="results">
        {prediction.results.map((r, i) => {
          const name = r.filename || names.get(String(r.image_id)) || `Image ${i + 1}`;
          return (
            <OutlineRow key={String(r.image_id ?? i)} result={r} name={name} labelNames={prediction.label_names} classes={classes}
              layer={layer} sideBySide={sideBySide} opacity={opacity} plain={plain} links={links} classWords={classWords} />
          );
        })}
      </ul>
    </>
  );
}

/** The agent reports a problem as `{code, message}`; older results held a sentence. */
export function imageProblem(error: PredictionResult['error'] | string | undefined): string {
  if (!error) return '';
  return typeof error === 'string' ? error : error.message || 'The model could not read this image.';
}

function OutlineRow({ result, name, labelNames, classes, classWords, layer, sideBySide, opacity, plain, links }: {
  result: PredictionResult;
  name: string;
  labelNames: string[];
  classes: string[];
  classWords: string;
  layer: Layer;
  sideBySide: boolean;
  opacity: number;
  plain: PlainImages;
  links: PictureLinks;
}) {
  const { ref, seen } = useSeen<HTMLLIElement>();
  const error = imageProblem(result.error);
  const answer = result.segmentation;
  const pictures = links.pictures(result);
  const want = plain.want;
  useEffect(() => {
    if (seen && !error) want(result.image_id);
  }, [seen, error, want, result.image_id]);
  return (
    <li className="result outline-result" ref={ref} data-testid="prediction-result">
      <div className="result-image">
        {error || !answer ? (
          <div className="heatmap-missing outline-missing">No outline</div>
        ) : (
          <OutlinePictureView name={name} layer={layer} sideBySide={sideBySide} opacity={opacity} seen={seen} classWords={classWords}
            top={pictures[layer] ?? null} plainUrl={plain.url(result.image_id)} onPlainFailed={() => plain.failed(result.image_id)}
            onTopFailed={() => void links.refresh()} />
        )}
      </div>
      <div className="result-body">
        <h3 className="h4 long-name" title={name}>{name}</h3>
        {error ? (
          <p className="field-error">{error}</p>
        ) : !answer ? (
          <p className="field-error">No outline came back for this image. Run the model on it again; if it keeps happening, tell your site administrator.</p>
        ) : (
          <>
            <p data-testid="outline-area">{areaInWords(answer, classes)}</p>
            {uncertaintyInWords(answer.mean_uncertainty) && <p className="small" data-testid="outline-unsure">{uncertaintyInWords(answer.mean_uncertainty)}</p>}
            <MaskLink result={result} name={name} links={links} href={pictures.mask ?? null} numbers={classNumbersInWords(labelNames)} />
          </>
        )}
      </div>
    </li>
  );
}

function OutlinePictureView({ name, layer, sideBySide, opacity, seen, classWords, top, plainUrl, onPlainFailed, onTopFailed }: {
  name: string;
  layer: Layer;
  sideBySide: boolean;
  opacity: number;
  seen: boolean;
  classWords: string;
  top: string | null;
  /** undefined while it is asked for, null when there is none. */
  plainUrl: string | null | undefined;
  onPlainFailed: () => void;
  onTopFailed: () => void;
}) {
  const [failed, setFailed] = useState<string | null>(null);
  if (!seen) return <div className="heatmap-missing" aria-hidden="true" />;
  if (!top) return <div className="heatmap-missing">Picture not available</div>;
  if (failed === top) return <div className="heatmap-missing">The picture could not be loaded</div>;
  const alt = layerAlt(layer, name, classWords);
  const topImage = (className?: string, style?: { opacity: number }) => (
    <img src={top} alt={alt} className={className} style={style} onError={() => { setFailed(top); onTopFailed(); }} />
  );
  const plainImage = plainUrl ? <img src={plainUrl} alt={`${name}, without the outline`} onError={onPlainFailed} /> : null;
  if (sideBySide && plainImage) {
    return (
      <div className="side-by-side" data-testid="side-by-side">
        <figure>{plainImage}<figcaption className="small">The image</figcaption></figure>
        <figure>{topImage()}<figcaption className="small">{LAYERS.find((l) => l.value === layer)!.label}</figcaption></figure>
      </div>
    );
  }
  if (plainImage) {
    return <div className="layers" data-testid="outline-layers">{plainImage}{topImage('layer-top', { opacity: opacity / 100 })}</div>;
  }
  return (
    <>
      {topImage()}
      {sideBySide && plainUrl === null && <p className="small muted">The image without the outline is not available here.</p>}
    </>
  );
}

/** The mask PNG: its link lasts a few minutes, so a late click asks for a fresh one first, then follows it. */
function MaskLink({ result, name, links, href, numbers }: {
  result: PredictionResult;
  name: string;
  links: PictureLinks;
  href: string | null;
  numbers: string;
}) {
  const [problem, setProblem] = useState('');
  const following = useRef(false);
  if (!href) return <p className="small muted">The mask could not be linked right now; reload the page to try again.</p>;
  const click = async (event: MouseEvent<HTMLAnchorElement>) => {
    if (following.current || Date.now() - links.linkedAt < LINK_FRESH_MS) {
      following.current = false;
      return;
    }
    event.preventDefault();
    const link = event.currentTarget;
    const fresh = (await links.refresh(true))?.get(String(result.image_id))?.segmentation_urls?.mask;
    if (!fresh) {
      setProblem('Your site did not give a fresh link. Reload the page and try again.');
      return;
    }
    setProblem('');
    link.href = fresh;
    following.current = true; // the click below goes through to the fresh link
    link.click();
  };
  return (
    <p className="small">
      <a href={href} download={`${name.replace(/\.[^.]+$/, '')}-mask.png`} onClick={click} data-testid="mask-download">Mask (PNG, class numbers)</a>
      <span className="block muted">Each pixel holds its class number: {numbers}.</span>
      {problem && <span className="block field-error" role="alert">{problem}</span>}
    </p>
  );
}

interface PlainImages {
  want: (imageId: number) => void;
  url: (imageId: number) => string | null | undefined;
  failed: (imageId: number) => void;
}

/** How many image ids one thumbnails request may name (the hub reads the first 200). */
const THUMBNAILS_PER_REQUEST = 200;

/**
 * The plain image under each outline: the dataset's thumbnail, asked for in batches as rows come
 * into view (each answer is a short-lived link straight to the site's storage).
 */
function usePlainImages(datasetId: number | null): PlainImages {
  const [urls, setUrls] = useState<Record<string, string | null>>({});
  const queued = useRef(new Set<number>());
  const asked = useRef(new Set<number>());
  const timer = useRef<number | null>(null);
  useEffect(() => {
    asked.current.clear();
    queued.current.clear();
    setUrls({});
  }, [datasetId]);
  const flush = useCallback(async () => {
    timer.current = null;
    const ids = [...queued.current];
    queued.current.clear();
    for (let i = 0; i < ids.length; i += THUMBNAILS_PER_REQUEST) {
      const chunk = ids.slice(i, i + THUMBNAILS_PER_REQUEST);
      let got: Record<string, string> = {};
      try {
        got = (await api.post<Thumbnails>(`/datasets/${datasetId}/thumbnails/`, { image_ids: chunk })).urls ?? {};
      } catch {
        // No plain image (the site did not answer): each outline is shown on its own.
      }
      setUrls((prev) => ({ ...prev, ...Object.fromEntries(chunk.map((id) => [String(id), got[String(id)] ?? null])) }));
    }
  }, [datasetId]);
  const want = useCallback((imageId: number) => {
    if (datasetId == null || asked.current.has(imageId)) return;
    asked.current.add(imageId);
    queued.current.add(imageId);
    timer.current ??= window.setTimeout(flush, 20);
  }, [datasetId, flush]);
  const url = useCallback((imageId: number) => (datasetId == null ? null : urls[String(imageId)]), [datasetId, urls]);
  const failed = useCallback((imageId: number) => setUrls((prev) => ({ ...prev, [String(imageId)]: null })), []);
  return useMemo(() => ({ want, url, failed }), [want, url, failed]);
}
