/** What a segmentation dataset's masks hold: images with and without a mask, normal images, lesion sizes, readers. */
import type { SegmentationStats } from '../api/types';
import { percent, plural } from '../lib/format';
import { dice, DICE_IN_WORDS, readerName, sizeBinLabel } from '../lib/segmentation';
import { BarChart } from './charts';
import { ErrorNotice, Loading } from './ui';
import { Tile } from './Tile';

export function SegmentationStatsPanel({ stats, referenceReader = '', error, onRetry }: {
  stats: SegmentationStats | null | undefined;
  /** Whose masks models learn from (blank: the unnamed reader's, else each image's first reader). */
  referenceReader?: string;
  error?: unknown;
  onRetry?: () => void;
}) {
  return (
    <section className="card" aria-labelledby="mask-stats-title" data-testid="mask-stats">
      <h2 id="mask-stats-title">Masks</h2>
      <ErrorNotice error={error} onRetry={onRetry} />
      {!stats && !error && <Loading what="Counting the masks" />}
      {stats && <MaskNumbers s={stats} referenceReader={referenceReader} />}
    </section>
  );
}

function MaskNumbers({ s, referenceReader }: { s: SegmentationStats; referenceReader: string }) {
  if (s.images_with_mask === 0 && s.images_without_mask === 0) {
    return <p className="muted">No masks yet. Add images with their masks: each mask appears here once your site has checked it.</p>;
  }
  const bins = s.size_histogram ?? [];
  const outlined = bins.reduce((sum, b) => sum + b.count, 0);
  return (
    <>
      <dl className="tiles">
        <Tile term="Images with a mask" value={s.images_with_mask.toLocaleString()} testId="with-mask" />
        <Tile term="Images without a mask" value={s.images_without_mask.toLocaleString()} testId="without-mask"
          note={s.images_without_mask ? 'a model learns only from images with a mask' : undefined} />
        <Tile term="Empty masks (normal images)" value={s.empty_masks.toLocaleString()} testId="empty-masks"
          note="nothing outlined: they teach the model when to draw nothing" />
        <Tile term="Lesions outlined" value={s.lesions.total.toLocaleString()}
          note={s.lesions.images_with_several ? `${plural(s.lesions.images_with_several, 'image')} with more than one` : 'at most one per image'} />
      </dl>
      {outlined > 0 && (
        <BarChart title="How large the outlined areas are" unit="masks" testId="size-histogram"
          bins={bins.map((b) => ({ name: sizeBinLabel(b), count: b.count }))}
          caption={`Share of the image each mask covers.${s.size_median != null ? ` Half the masks cover less than ${percent(s.size_median, s.size_median < 0.1 ? 1 : 0)} of their image.` : ''}`} />
      )}
      {s.images_without_mask > 0 && (
        <p className="small warning-text">
          {plural(s.images_without_mask, 'ready image')} {s.images_without_mask === 1 ? 'has' : 'have'} no mask. Upload {s.images_without_mask === 1 ? 'its mask' : 'their masks'} with the
          same file names to use {s.images_without_mask === 1 ? 'it' : 'them'} for learning.
        </p>
      )}
      <Readers s={s} referenceReader={referenceReader} />
    </>
  );
}

function Readers({ s, referenceReader }: { s: SegmentationStats; referenceReader: string }) {
  const readers = s.readers ?? [];
  if (!readers.length) return null;
  const a = s.agreement;
  return (
    <div data-testid="readers">
      <h3 className="h4">Who drew the masks</h3>
      {readers.length > 1 && (
        <p className="small muted">
          Models learn from {referenceReader ? `${referenceReader}’s masks` : readers.some((r) => !r.reader) ? 'the masks of the unnamed reader' : `${readers[0].reader}’s masks`}
          {' '}(change this under Mask settings). The others are compared with them.
        </p>
      )}
      <div className="table-wrap">
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Reader</th>
              <th scope="col" className="num">Masks ready</th>
              <th scope="col" className="num">Turned away</th>
              <th scope="col" className="num">Being checked</th>
            </tr>
          </thead>
          <tbody>
            {readers.map((r) => (
              <tr key={r.reader}>
                <th scope="row">{readerName(r.reader)}</th>
                <td className="num">{r.accepted}</td>
                <td className="num">{r.rejected}</td>
                <td className="num">{r.pending}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {a && a.images > 0 && (
        <div data-testid="agreement">
          <h3 className="h4">How much the readers agree</h3>
          <p>
            Over {plural(a.images, 'mask')} drawn by a second reader, the outlines overlap the reference reader’s with a mean Dice
            of <strong>{dice(a.mean_dice)}</strong> (median {dice(a.median_dice)}). {DICE_IN_WORDS} A model that reaches this overlap
            outlines as well as a second expert.
          </p>
          {a.worst.length > 0 && (
            <>
              <p className="small muted">The images where the readers disagree most: worth a second look.</p>
              <div className="table-wrap">
                <table className="table" data-testid="agreement-worst">
                  <thead>
                    <tr>
                      <th scope="col">Image</th>
                      <th scope="col">Reader</th>
                      <th scope="col" className="num">Dice</th>
                    </tr>
                  </thead>
                  <tbody>
                    {a.worst.map((w) => (
                      <tr key={`${w.image_id}-${w.reader}`}>
                        <th scope="row" className="file-name">{w.filename}</th>
                        <td>{readerName(w.reader)}</td>
                        <td className="num">{dice(w.dice)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )}
        </div>
      )}
    </div>
  );
}
