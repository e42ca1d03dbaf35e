/**
 * The dashboard's names for the hub's API types. Every type here is the one generated from the
 * hub's OpenAPI schema (schema.d.ts, made from openapi.json by `make api-types`; never edit
 * either by hand): a page can never read a field the API does not send. Only the JSON columns
 * that the schema leaves open (`unknown`) are given their shape, from json.ts.
 */
import type { components } from './schema';
import type {
  Evaluation,
  FederatedEvent,
  MaskStats,
  SegmentationStats,
  HistoryPoint,
  JobProgress,
  LabelStat,
  Lineage,
  ModelCard,
  OutlineAnswer,
  OutlinePictures,
  RoundMetrics,
  SiteEvaluationMetrics,
} from './json';

export type {
  Evaluation,
  EvaluationSample,
  FederatedEvent,
  HistoryPoint,
  JobProgress,
  LabelStat,
  Lineage,
  HistogramBin,
  LineageNode,
  MaskStats,
  ModelCard,
  OutlineAnswer,
  OutlinePictures,
  RocCurveData,
  RoundMetrics,
  SegmentationResults,
  SegmentationStats,
  TtaPolicy,
} from './json';

type Schemas = components['schemas'];
/** A generated type with its open JSON fields given their shape. */
type Shaped<T, Shape> = Omit<T, keyof Shape> & Shape;

// --- Sites, people and credentials (platform/pollen/accounts) --------------------------------------

export type Role = Schemas['RoleEnum'];
export type SiteBrief = Schemas['SiteOut'];
export type Membership = Schemas['MembershipBrief'];
export type Me = Schemas['MeOut'];
export type Member = Schemas['MemberOut'];
/** How a person joins a site: an administrator invites, the person accepts with the secret link. */
export type InvitationStatus = Schemas['InvitationStatusEnum'];
export type Invitation = Schemas['InvitationOut'];
/** The answer to creating an invitation: the secret and its link are shown once. */
export type CreatedInvitation = Schemas['InvitationCreatedOut'];
/** What an invitation link offers, before it is accepted. */
export type InvitationPreview = Schemas['InvitationPreviewOut'];
export type ApiToken = Schemas['TokenOut'];
export type CreatedToken = Schemas['TokenCreatedOut'];
export type AuditEvent = Shaped<Schemas['AuditEventOut'], { detail: Record<string, unknown> }>;
export type ConsortiumSite = Schemas['SiteOut'];

// --- Datasets (platform/pollen/datasets) ------------------------------------------------------------

/** What a dataset's images are labelled with: a label per image, or an outline (mask) per image. */
export type Task = Schemas['TaskEnum'];
export type Dataset = Shaped<Schemas['DatasetOut'], { label_names: string[]; mask_classes: string[] }>;
/** GET /datasets/{id}/deletion-impact/ (site administrators): what depends on a dataset. */
export type DeletionImpact = Schemas['DeletionImpactOut'];
export type DatasetStats = Shaped<
  Schemas['DatasetStats'],
  {
    labels: LabelStat[];
    patients: { count: number; images_without_patient: number };
    sizes: Record<string, unknown>;
    status: { accepted: number; rejected: number; pending: number };
    rejected_by_reason: { code: string; count: number }[];
    segmentation?: SegmentationStats;
  }
>;
export type ImageStatus = Schemas['ImageStatusEnum'];
/** One reader's mask of an image (segmentation datasets). */
export type Mask = Shaped<Schemas['MaskOut'], { filenames: string[]; stats: Partial<MaskStats> }>;
export type DatasetImage = Shaped<Schemas['ImageOut'], { masks?: Mask[] }>;
export type RefusedFile = Schemas['RefusedOut'];
export type UploadSlot = Schemas['SlotOut'];
/** One file as POST /datasets/{id}/upload-slots/ names it (with its masks, in a segmentation dataset). */
export type SlotRequest = Schemas['FileInRequest'];
export type MaskSlot = Schemas['MaskSlotOut'];
/** POST /datasets/{id}/thumbnails/: short-lived links, per image id and (segmentation) per mask id. */
export type Thumbnails = Schemas['Thumbnails'];
/** A zip of images uploaded and unpacked at the site. `rejected`: the files it could not use. */
export type ArchiveImport = Shaped<Schemas['ArchiveOut'], { rejected: { filename: string; reason: string }[] }>;
export type ArchiveSlot = Schemas['ArchiveSlotOut'];

// --- Training (platform/pollen/training) ------------------------------------------------------------

export type ZooEntry = Schemas['ZooEntryOut'];
export type JobStatus = Schemas['JobStatusEnum'];
export const FINAL_JOB_STATUSES: JobStatus[] = ['succeeded', 'failed', 'cancelled'];
/** What a fine-tune's check against its parent concluded (workers/pollen_contracts/comparison.py). */
export type ParentVerdict = Schemas['VerdictEnum'];
/** One model's results on the check images, each with its 95 % range [low, high]. */
export type ComparedModel = Schemas['ComparedModel'];
/** A fine-tuned model ("child") beside the model it started from ("parent"), on the same check images. */
export type ParentComparison = Schemas['ParentComparison'];
/** A queued job's place in its site's line (quick models have a line of their own). */
export type QueuePlace = Schemas['QueuePlaceOut'];
export type Job = Shaped<
  Schemas['JobOut'],
  {
    config: Record<string, unknown>;
    label_names: string[];
    progress: Partial<JobProgress> | null;
    history: HistoryPoint[];
    evaluation: Evaluation | null;
    timings: Record<string, unknown>;
    events: Record<string, unknown>[];
  }
>;

// --- Marketplace (platform/pollen/marketplace) ------------------------------------------------------

export type Visibility = Schemas['VisibilityEnum'];
export type VersionStatus = Schemas['VersionStatusEnum'];
export const USABLE_VERSION_STATUSES: VersionStatus[] = ['published', 'deprecated'];
export type VersionSummary = Schemas['VersionSummaryOut'];
export type PublishedModel = Shaped<Schemas['PublishedModelOut'], { label_names: string[] }>;
export type PublishedVersion = Shaped<Schemas['PublishedVersionOut'], { card: ModelCard }>;
export type SiteResult = Schemas['SiteResultOut'];
export type PublishedModelDetail = Shaped<
  Schemas['PublishedModelDetailOut'],
  { label_names: string[]; versions: PublishedVersion[]; card: ModelCard | null; lineage: Lineage }
>;
export type WorkStatus = Schemas['WorkStatusEnum'];
/** One image's answer. `tta`: what its probabilities were averaged over (absent from older results).
 * An outlining model's answer has `segmentation` (and, on the prediction's own page, links to its pictures). */
export type PredictionResult = Shaped<
  Schemas['PredictionResultOut'],
  { segmentation?: OutlineAnswer; segmentation_urls?: OutlinePictures }
>;
export type Prediction = Shaped<
  Schemas['PredictionOut'],
  {
    results: PredictionResult[];
    label_names: string[];
    timings: Record<string, unknown>;
    /** Why the heatmap links could not be made (a finished prediction's own page only). The
     * hub adds it outside PredictionOut, so the schema does not list it yet. */
    overlay_links_error?: string;
  }
>;
export type SiteEvaluation = Shaped<Schemas['EvaluationOut'], { metrics: SiteEvaluationMetrics }>;
export type ModelExport = Shaped<Schemas['ExportOut'], { details: Record<string, unknown> }>;
export type VersionDownload = Schemas['Download'];
export type ExportDownload = Schemas['ExportDownload'];
/** A model trained at one of my sites (GET /models/). */
export type ModelVersion = Shaped<
  Schemas['ModelVersionOut'],
  {
    label_names: string[];
    mean: number[];
    std: number[];
    training_summary: Record<string, unknown>;
    metrics: Record<string, unknown>;
  }
>;

// --- Training across hospitals (platform/pollen/federation) ------------------------------------------

export type Strategy = Schemas['StrategyEnum'];
export type FederatedStatus = Schemas['FederatedStatusEnum'];
export const FINAL_FEDERATED_STATUSES: FederatedStatus[] = ['succeeded', 'failed', 'cancelled'];
export type ConsentStatus = Schemas['ParticipantStatusEnum'];
export type WorkState = Schemas['WorkStateEnum'];
export type RoundStatus = Schemas['RoundStatusEnum'];
export type Participant = Shaped<
  Schemas['ParticipantOut'],
  { progress: Partial<Pick<JobProgress, 'phase' | 'epoch' | 'epochs' | 'loss' | 'fraction' | 'eta_seconds'>> }
>;
export type RoundUpdate = Shaped<Schemas['UpdateOut'], { metrics: Record<string, number> }>;
export type FederatedRound = Shaped<
  Schemas['RoundOut'],
  { metrics: RoundMetrics; updates: RoundUpdate[] }
>;
/** One model on a site's held-out images: aggregate numbers with 95 % ranges. */
export type HeldOutModel = Schemas['HeldOutMetricsOut'];
export type HeldOutVerdict = Exclude<ParentVerdict, 'not_compared'>;
/** A site's check of the final cross-site model, beside its local model, on its held-out images. */
export type HeldOutCheck = Shaped<
  Schemas['HeldOutOut'],
  { comparison: Shaped<Schemas['HeldOutComparisonOut'], { verdict: HeldOutVerdict }> | null }
>;
export type FederatedJob = Shaped<
  Schemas['FederatedJobOut'],
  {
    label_names: string[];
    config: Record<string, unknown>;
    events: FederatedEvent[];
    participants: Participant[];
    round_details: FederatedRound[];
    held_out: HeldOutCheck[];
  }
>;
