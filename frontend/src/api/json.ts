/**
 * The shapes of the JSON columns that the hub stores as the site agent reports them (a training
 * run's progress, history and final check; a model's card and metrics; a cross-site round's
 * metrics). The hub's OpenAPI schema declares these columns as open JSON (`unknown` in
 * schema.d.ts), so their shapes are written here, by hand, from what the agent sends
 * (workers/pollen_agent/ml/metrics.py, workers/pollen_contracts). types.ts puts them in place of
 * the open columns of the generated types.
 */
import type { components } from './schema';

type Schemas = components['schemas'];

export interface JobProgress {
  phase: 'loading' | 'training' | 'evaluating' | 'saving';
  epoch: number | null;
  epochs: number | null;
  step: number | null;
  steps: number | null;
  loss: number | null;
  eta_seconds: number | null;
  fraction: number | null;
}

export interface HistoryPoint {
  epoch: number;
  train_loss: number | null;
  /** Mistakes on the tuning (validation) images; older runs did not report it. */
  val_loss?: number | null;
  /** Classification only. */
  val_auc?: number | null;
  val_accuracy?: number | null;
  /** Segmentation only: mean Dice of the outlines on the tuning images. */
  val_dice?: number | null;
}

export interface RocCurveData {
  fpr: number[];
  tpr: number[];
}

/** What the site agent reports after the final check (workers/pollen_agent/ml/metrics.py; a
 * segmentation model's numbers, in SegmentationResults, from ml/segmentation/metrics.py). */
export interface Evaluation extends SegmentationResults {
  /** "segmentation" for an outlining model; older and classification evaluations leave it out. */
  task?: string;
  n?: number;
  accuracy?: number | null;
  balanced_accuracy?: number | null;
  auc?: number | null;
  /** The label of the finding (two labels only); older evaluations lack it and measured the second label. */
  positive_class?: string | null;
  /** Two labels only: the share of images of `positive_class` that the model found. */
  sensitivity?: number | null;
  /** Two labels only: the share of images of the other label that the model cleared. */
  specificity?: number | null;
  confusion_matrix?: number[][];
  /** One curve per label ({label: curve}); older payloads sent a single {fpr, tpr}. */
  roc?: Record<string, RocCurveData> | RocCurveData | null;
  per_class?: Record<string, { count: number; sensitivity: number | null; specificity: number | null }>;
  ece?: number | null;
  calibration_error?: number | null;
  class_counts?: Record<string, number>;
  warnings?: string[];
  label_names: string[];
  samples?: EvaluationSample[];
  /** Full training runs: how many rounds ran, which one was kept, and why the run ended. */
  epochs_run?: number;
  kept_epoch?: number;
  planned_epochs?: number;
  /** 'cancelled': a user stopped the run after some rounds; the model is the best of those. */
  stop_reason?: 'completed' | 'early_stopping' | 'time_budget' | 'cancelled';
}

/** One final-check image: its label, the model's answer and, once presigned, a link to its heatmap overlay
 * (segmentation: the model's outline over the image, and that image's Dice). */
export interface EvaluationSample {
  image_id: number | string;
  label?: string | number | null;
  predicted?: string | number | null;
  probability?: number | null;
  dice?: number | null;
  overlay_key?: string | null;
  overlay_url?: string | null;
  /** The file's name as uploaded (GET /jobs/{id}/samples/ adds it; null where the image is gone). */
  filename?: string | null;
}

/** A bar of a histogram: how many fall between `from` and `to`. */
export interface HistogramBin {
  from: number;
  to: number;
  count: number;
}

/**
 * A segmentation model's final check (workers/pollen_agent/ml/segmentation/metrics.py). Dice and
 * IoU are per image, then averaged; an image with nothing to outline that the model left empty
 * scores 1. Every field is optional: classification evaluations have none of them.
 */
export interface SegmentationResults {
  images?: number;
  lesion_images?: number;
  dice?: number | null;
  dice_ci?: [number, number] | null;
  lesion_dice?: number | null;
  lesion_dice_ci?: [number, number] | null;
  iou?: number | null;
  pooled_dice?: number | null;
  hd95_median?: number | null;
  detection?: {
    found: number;
    missed: number;
    false: number;
    sensitivity: number | null;
    false_per_image: number | null;
    rule?: string;
  } | null;
  empty_images?: number;
  empty_correct?: number;
  empty_correct_fraction?: number | null;
  /** Bins of Dice over images; the agent may send them as {edges, counts}. */
  dice_histogram?: HistogramBin[] | { edges: number[]; counts: number[] } | null;
  worst?: { image_id: number | string; dice: number | null; has_finding?: boolean; drew_something?: boolean; filename?: string }[];
  /** A model card's or a site check's worst cases: the lowest Dice values only (which images stays at the site). */
  worst_dice?: number[];
}

/**
 * An outlining model's answer for one image (workers/pollen_contracts/reports.py: SegmentationAnswer).
 * The pictures are in the site's storage at the image's own size; areas are per class name
 * (background left out).
 */
export interface OutlineAnswer {
  mask_key: string;
  overlay_key: string;
  probability_key: string;
  uncertainty_key: string;
  class_pixels: Record<string, number>;
  /** The share of the image each class covers (0..1). */
  area_fraction: Record<string, number>;
  /** Separate regions drawn, all classes together. */
  regions: number;
  /** How undecided the model was, averaged over the image (normalised entropy, 0..1). */
  mean_uncertainty: number;
}

/** Short-lived links to an outlining answer's pictures (a finished prediction's own page only). */
export interface OutlinePictures {
  /** The class numbers as a greyscale PNG (0 background). */
  mask?: string | null;
  /** The image with the model's outline in yellow. */
  overlay?: string | null;
  probability?: string | null;
  uncertainty?: string | null;
}

/** What the site agent found in one mask (workers/pollen_agent/ingest/masks.py). */
export interface MaskStats {
  empty: boolean;
  /** The share of the image the mask covers. */
  foreground_fraction: number;
  class_pixels: Record<string, number>;
  /** Separate regions (lesions). */
  components: number;
  largest_component_px: number;
}

/** A segmentation dataset's statistics block (platform/pollen/datasets/masks.py: segmentation_stats). */
export interface SegmentationStats {
  mask_classes?: string[];
  images_with_mask: number;
  images_without_mask: number;
  empty_masks: number;
  lesions: { total: number; images_with_several: number };
  /** How many masks cover each share of the image (`from` and `to` are fractions, 0..1). */
  size_histogram: HistogramBin[];
  size_median: number | null;
  readers: { reader: string; accepted: number; rejected: number; pending: number }[];
  agreement: {
    images: number;
    mean_dice: number | null;
    median_dice: number | null;
    worst: { image_id: number; filename: string; reader: string; dice: number }[];
  };
}

/**
 * The test-time augmentation the site agent averaged each image's probabilities over
 * (workers/pollen_contracts/manifest.py): "none" the image alone, "hflip" the image and its mirror
 * image (every model trained here, trained with random horizontal flips), "d4" the eight turns and
 * flips of the square (only a model whose manifest says so). Results stored before it was recorded
 * lack it.
 */
export type TtaPolicy = 'none' | 'hflip' | 'd4';

/** A site's check of a published model: aggregate numbers only (the shape of a final check). */
export type SiteEvaluationMetrics = Partial<Evaluation> & {
  /** Checks stored before the policy was recorded hold whether TTA was asked (true/false): lib/metrics.ts's ttaInWords says "not recorded". */
  tta?: TtaPolicy;
  evaluated_on?: string;
  /** A classifier's check: images left out; an outlining model's: why, e.g. `{without_mask: 3}`. */
  skipped_images?: number | { without_mask?: number };
};

export interface ModelCard {
  name?: string;
  version?: number;
  architecture?: string;
  task?: string;
  labels?: string[];
  /** The finding the model looks for: its sensitivity ("found") is about this label. */
  positive_class?: string | null;
  /** `mode` (outlining models): "whole" images letterboxed, or "patch" (read in overlapping squares). */
  input?: { size?: number; channels?: number; mean?: number[]; std?: number[]; preprocessing?: string; mode?: string };
  training_data?: {
    modality?: string;
    /** Per split: images per label (classifiers), or `images` and `empty_masks` (outlining models). */
    images_per_split?: Record<string, Record<string, number>>;
    images_per_label?: Record<string, number>;
    total_images?: number;
    /** Outlining models: training images whose mask is empty (nothing to outline). */
    empty_masks?: number;
    recipe?: string | null;
  };
  site?: { slug: string; name: string };
  metrics?: Record<string, unknown>;
  lineage?: {
    weights_sha256?: string;
    starting_point?: { slug: string; name: string; source: string } | null;
    parent?: { site: string; weights_sha256: string } | null;
  };
  licence?: string;
  trained_at?: string;
  intended_use?: string;
  limitations?: string;
  visibility?: Schemas['VisibilityEnum'];
  status?: Schemas['VersionStatusEnum'];
}

export interface LineageNode {
  visible: boolean;
  description?: string;
  site?: string;
  name?: string;
  architecture?: string;
  weights_sha256?: string;
  model_version?: number | null;
  published_model?: number | null;
  published_version?: number | null;
  version_number?: number | null;
  generation?: number;
}

export interface Lineage {
  parents: LineageNode[];
  descendants: LineageNode[];
}

export interface LabelStat {
  label: string;
  count: number;
  train: number;
  val: number;
  test: number;
}

export interface RoundMetrics {
  sites?: number;
  training_images?: number;
  val_auc?: number;
  val_accuracy?: number;
  val_balanced_accuracy?: number;
  val_loss?: number;
  train_loss?: number;
  per_site?: Record<string, { sample_count: number; val_auc?: number | null; val_accuracy?: number | null }>;
}

export interface FederatedEvent {
  at: string;
  text: string;
  code?: string;
  site?: string;
}
