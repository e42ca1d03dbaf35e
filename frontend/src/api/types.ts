export type Role = 'admin' | 'clinician';

export interface SiteBrief {
  slug: string;
  name: string;
  agent_last_seen_at: string | null;
}

export interface Membership {
  site: SiteBrief;
  role: Role;
}

export interface Me {
  username: string;
  display_name: string;
  is_token: boolean;
  is_operator: boolean;
  memberships: Membership[];
}

export interface Member {
  id: number;
  username: string;
  email: string;
  site: string;
  role: Role;
  created_at: string;
}

/** How a person joins a site: an administrator invites, the person accepts with the secret link. */
export type InvitationStatus = 'pending' | 'accepted' | 'revoked' | 'expired';

export interface Invitation {
  id: number;
  email: string;
  role: Role;
  site: string;
  status: InvitationStatus;
  created_by: string | null;
  created_at: string;
  expires_at: string;
  accepted_at: string | null;
  /** The account that joined: a member of this site from then on. */
  accepted_by: string | null;
  revoked_at: string | null;
}

/** The answer to creating an invitation: the secret and its link are shown once. */
export interface CreatedInvitation extends Invitation {
  token: string;
  accept_url: string;
}

/** What an invitation link offers, before it is accepted. */
export interface InvitationPreview {
  site: SiteBrief;
  role: Role;
  expires_at: string;
}

export interface ApiToken {
  id: number;
  name: string;
  site: string;
  kind: 'system' | 'agent';
  role: Role;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
}

export interface CreatedToken extends ApiToken {
  token: string;
}

export interface AuditEvent {
  id: number;
  site: string | null;
  actor: string;
  action: string;
  target_type: string;
  target_id: string;
  detail: Record<string, unknown>;
  ip_address: string | null;
  created_at: string;
}

export interface Dataset {
  id: number | string;
  site: string;
  name: string;
  description: string;
  modality: string;
  label_names: string[];
  /** Two labels: the finding a model trained here looks for (sensitivity is about it); '' otherwise. */
  positive_class: string;
  image_count: number;
  accepted_count: number;
  rejected_count: number;
  /** Uploaded images the site agent is checking. */
  pending_count: number;
  /** Upload slots still waiting for their file. */
  uploading_count?: number;
  /** Uploads not finished in time ("upload not finished"): resume or discard them. */
  unfinished_count: number;
  status?: 'active' | 'deleting' | 'deleted';
  created_at: string;
}

/** GET /datasets/{id}/deletion-impact/ (site administrators): what depends on a dataset. */
export interface DeletionImpact {
  dataset: { id: number; name: string };
  images: number;
  jobs: { id: number; name: string; status: string }[];
  model_versions: { id: number; name: string }[];
  published_versions: { id: number; model_name: string; number: number; status: string }[];
  evaluations: { id: number; status: string; published_version_id: number }[];
  predictions: { id: number; status: string }[];
  federated_jobs: { id: number; name: string; status: string }[];
  /** Work that must finish before the dataset can be deleted. */
  blocking: string[];
  can_delete: boolean;
  /** What deleting removes and what it keeps, in a sentence or two. */
  summary: string;
}

export interface LabelStat {
  label: string;
  count: number;
  train: number;
  val: number;
  test: number;
}

export interface DatasetStats {
  labels: LabelStat[];
  patients: { count: number; images_without_patient: number };
  sizes?: Record<string, unknown>;
  status: { accepted: number; rejected: number; pending: number };
  rejected_by_reason?: { code: string; count: number }[];
  unlabelled?: number;
}

export type ImageStatus = 'pending' | 'accepted' | 'rejected' | 'expired';

export interface DatasetImage {
  id: number | string;
  filename: string;
  label: string | null;
  patient_id: string | null;
  status: ImageStatus;
  reject_reason: string | null;
  width: number | null;
  height: number | null;
  split: 'train' | 'val' | 'test' | null;
  reject_code?: string;
  size_bytes?: number | null;
  created_at?: string;
  /** Set while the slot waits for its file: when the unfinished upload expires. */
  upload_expires_at?: string | null;
}

export interface RefusedFile {
  filename: string;
  code: string;
  reason: string;
}

export interface UploadSlot {
  image_id: number | string;
  filename: string;
  url: string;
  method: string;
  headers: Record<string, string>;
}

export interface ZooEntry {
  id: number | string;
  name: string;
  architecture: string;
  source: string;
  licence: string;
  description: string;
  recommended: boolean;
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINAL_JOB_STATUSES: JobStatus[] = ['succeeded', 'failed', 'cancelled'];

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
  val_auc: number | null;
  val_accuracy: number | null;
}

export interface RocCurveData {
  fpr: number[];
  tpr: number[];
}

/** What the site agent reports after the final check (workers/pollen_agent/ml/metrics.py). */
export interface Evaluation {
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

/** One final-check image: its label, the model's answer and, once presigned, a link to its heatmap overlay. */
export interface EvaluationSample {
  image_id: number | string;
  label: string | number | null;
  predicted: string | number | null;
  probability: number | null;
  overlay_key?: string | null;
  overlay_url?: string | null;
  filename?: string;
}

/** What a fine-tune's check against its parent concluded (workers/pollen_contracts/comparison.py). */
export type ParentVerdict = 'better' | 'worse' | 'no_clear_difference' | 'too_few' | 'not_compared';

/** One model's results on the check images, each with its 95 % range [low, high]. */
export interface ComparedModel {
  auc?: number | null;
  auc_ci?: number[] | null;
  accuracy?: number | null;
  accuracy_ci?: number[] | null;
  balanced_accuracy?: number | null;
  sensitivity?: number | null;
  sensitivity_ci?: number[] | null;
  specificity?: number | null;
  specificity_ci?: number[] | null;
}

/** A fine-tuned model ("child") beside the model it started from ("parent"), on the same check images. */
export interface ParentComparison {
  verdict: ParentVerdict;
  /** The verdict in plain words. */
  verdict_text: string;
  /** Why the two were not compared (verdict 'not_compared'). */
  reason?: string;
  check_images?: number;
  images_per_label?: Record<string, number>;
  confidence_level?: number;
  child?: ComparedModel;
  parent?: ComparedModel;
  /** The child's AUC minus the parent's, and its paired-bootstrap 95 % range. */
  auc_difference?: number | null;
  auc_difference_ci?: number[] | null;
  resamples?: number;
  seed?: number;
  parent_model_version?: number | null;
}

/** A queued job's place in its site's line (quick models have a line of their own). */
export interface QueuePlace {
  position: number;
  jobs_ahead: number;
  /** What the site's computer is busy with now. */
  running: string[];
  /** Its place and what it waits for, in plain words. */
  text: string;
}

export interface Job {
  id: number | string;
  dataset: number | string;
  dataset_name?: string;
  site?: string;
  starting_point?: number | string;
  starting_point_name?: string;
  /** The model this run improves (fine-tuning), when it did not start from the zoo. */
  parent_version?: number | null;
  recipe?: string;
  status: JobStatus;
  status_text?: string;
  cancel_requested?: boolean;
  /** Null unless queued. */
  queue?: QueuePlace | null;
  error_code?: string;
  progress: Partial<JobProgress> | null;
  message: string;
  history: HistoryPoint[];
  evaluation: Evaluation | null;
  model_version: unknown;
  /** A fine-tune's model beside the model it started from; null for other runs and until it finishes. */
  parent_comparison?: ParentComparison | null;
  created_at?: string;
}

// --- Marketplace (platform/pollen/marketplace/apis.py) --------------------------------------------

export type Visibility = 'site' | 'named' | 'consortium';
export type VersionStatus = 'pending' | 'published' | 'failed' | 'deprecated' | 'withdrawn';
export const USABLE_VERSION_STATUSES: VersionStatus[] = ['published', 'deprecated'];

export interface VersionSummary {
  id: number;
  number: number;
  status: VersionStatus;
  auc: number | null;
  /** The finding the model looks for ('' with three or more labels). */
  positive_class: string;
  weights_sha256: string;
  published_at: string | null;
}

export interface PublishedModel {
  id: number;
  name: string;
  site: string;
  site_name: string;
  modality: string;
  task: string;
  architecture: string;
  label_names: string[];
  visibility: Visibility;
  named_sites: string[] | null;
  intended_use: string;
  limitations: string;
  latest_version: VersionSummary | null;
  version_count: number;
  created_at: string;
  updated_at: string;
}

export interface ModelCard {
  name?: string;
  version?: number;
  architecture?: string;
  task?: string;
  labels?: string[];
  /** The finding the model looks for: its sensitivity ("found") is about this label. */
  positive_class?: string | null;
  input?: { size?: number; channels?: number; mean?: number[]; std?: number[]; preprocessing?: string };
  training_data?: {
    modality?: string;
    images_per_split?: Record<string, Record<string, number>>;
    images_per_label?: Record<string, number>;
    total_images?: number;
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
  visibility?: Visibility;
  status?: VersionStatus;
}

export interface PublishedVersion {
  id: number;
  published_model: number;
  model_name: string;
  site: string;
  number: number;
  status: VersionStatus;
  status_text: string;
  status_reason: string;
  model_version: number | null;
  weights_sha256: string;
  auc: number | null;
  card: ModelCard;
  error_code: string;
  message: string;
  created_at: string;
  published_at: string | null;
  /** Whether I may deprecate or withdraw it: its publisher, or an administrator of the publishing site. */
  can_manage?: boolean;
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

export interface SiteResult {
  site: string;
  /** The hospital's display name (rows are only the publisher's own check and results a hospital shared). */
  site_name: string;
  version: number;
  source: 'publisher_test_split' | 'site_evaluation' | string;
  n: number | null;
  auc: number | null;
  accuracy: number | null;
  balanced_accuracy: number | null;
  sensitivity: number | null;
  specificity: number | null;
  /** The finding this row's sensitivity is about. */
  positive_class: string;
  /** Whether it is the latest version's finding; rows about another finding are never compared with those. */
  same_finding: boolean;
  ece: number | null;
  at: string | null;
}

export interface PublishedModelDetail extends PublishedModel {
  versions: PublishedVersion[];
  card: ModelCard | null;
  lineage: Lineage;
  /** The finding the latest version looks for. */
  positive_class: string;
  evaluations: SiteResult[];
}

export type WorkStatus = 'queued' | 'running' | 'succeeded' | 'failed';

export interface PredictionResult {
  image_id?: number | string;
  key?: string;
  /** The file's name as it was uploaded (absent only from results stored before names were kept). */
  filename?: string | null;
  probabilities?: Record<string, number> | number[];
  predicted?: string | number;
  overlay_key?: string | null;
  overlay_url?: string | null;
  width?: number;
  height?: number;
  patches?: number;
  sliding_window?: boolean | Record<string, unknown>;
  /** Why the model could not read this image (the agent sends a code and a sentence). */
  error?: { code: string; message: string } | string;
  [extra: string]: unknown;
}

export interface Prediction {
  id: number;
  site: string;
  status: WorkStatus;
  published_version: number | null;
  model_version: number | null;
  dataset: number | null;
  label_names: string[];
  tta: boolean;
  heatmap: boolean;
  images: number;
  results: PredictionResult[];
  error_code: string;
  message: string;
  overlay_links_error?: string;
  created_at: string;
  finished_at: string | null;
}

export interface ConsortiumSite {
  slug: string;
  name: string;
}

export interface SiteEvaluation {
  id: number;
  site: string;
  status: WorkStatus;
  published_version: number;
  published_model: number;
  dataset: number | null;
  /** Aggregate numbers only (the same shape as a training run's final check), once finished. */
  metrics: Partial<Evaluation> & { tta?: boolean; evaluated_on?: string; skipped_images?: number };
  shared: boolean;
  shared_at: string | null;
  error_code: string;
  message: string;
  created_at: string;
  finished_at: string | null;
}

export interface ModelExport {
  id: number;
  site: string;
  status: WorkStatus;
  published_version: number;
  format: string;
  sha256: string;
  size_bytes: number | null;
  error_code: string;
  message: string;
  created_at: string;
  finished_at: string | null;
}

export interface VersionDownload {
  weights_url: string;
  weights_sha256: string;
  manifest_url: string;
  manifest_sha256: string;
  card_url: string;
  expires_in: number;
}

export interface ExportDownload {
  onnx_url: string;
  sha256: string;
  expires_in: number;
}

/** A model trained at one of my sites (GET /models/). */
export interface ModelVersion {
  id: number;
  site: string;
  name: string;
  job: number | null;
  architecture: string;
  label_names: string[];
  /** The finding the model looks for ('' with three or more labels). */
  positive_class: string;
  input_size: number;
  weights_sha256: string;
  parent: number | null;
  starting_point: string | null;
  metrics: Record<string, unknown>;
  /** A fine-tune beside the model it started from; null for other models. */
  parent_comparison: ParentComparison | null;
  created_at: string;
}

// --- Training across hospitals (platform/pollen/federation/apis.py) -------------------------------

export type Strategy = 'relay' | 'fedavg';
export type FederatedStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINAL_FEDERATED_STATUSES: FederatedStatus[] = ['succeeded', 'failed', 'cancelled'];
export type ConsentStatus = 'invited' | 'accepted' | 'declined' | 'withdrawn';
export type WorkState = 'idle' | 'queued' | 'training' | 'sent' | 'failed' | 'missed';
export type RoundStatus = 'running' | 'aggregating' | 'done' | 'failed' | 'cancelled';

export interface Participant {
  site: string;
  site_name: string;
  order: number;
  status: ConsentStatus;
  /** Named only to the site itself; other sites see the image count. */
  dataset: number | null;
  dataset_name: string | null;
  train_count: number;
  responded_at: string | null;
  work_round: number | null;
  work_state: WorkState;
  progress: Partial<Pick<JobProgress, 'phase' | 'epoch' | 'epochs' | 'loss' | 'fraction' | 'eta_seconds'>>;
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

export interface RoundUpdate {
  site: string;
  status: 'accepted' | 'rejected' | 'failed';
  sample_count: number;
  metrics: Record<string, number>;
  code: string;
  reason: string;
  created_at: string;
}

export interface FederatedRound {
  number: number;
  status: RoundStatus;
  expected_sites: string[];
  current_site: string | null;
  deadline_at: string;
  weights_sha256: string;
  metrics: RoundMetrics;
  model_version: number | null;
  updates: RoundUpdate[];
  started_at: string;
  finished_at: string | null;
}

/** One model on a site's held-out images: aggregate numbers with 95 % ranges (federation/apis.py HeldOutMetricsOut). */
export interface HeldOutModel extends ComparedModel {
  n: number;
  class_counts?: Record<string, number>;
  positive_class?: string;
  warnings?: string[];
}

export type HeldOutVerdict = 'better' | 'worse' | 'no_clear_difference' | 'too_few';

/** A site's check of the final cross-site model, beside its local model, on its held-out images. */
export interface HeldOutCheck {
  site: string;
  site_name: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  federated: HeldOutModel | null;
  /** The site's local model: its own round-1 model (its images only, same starting model). */
  local: HeldOutModel | null;
  /** Cross-site AUC minus local AUC on the same images, with its paired 95 % range. */
  comparison: { auc_difference: number | null; auc_difference_ci: number[] | null; verdict: HeldOutVerdict } | null;
  local_source: 'first_round' | '';
  /** Why there is no local model, in plain words. */
  local_note: string;
  error_code: string;
  message: string;
  finished_at: string | null;
}

export interface FederatedEvent {
  at: string;
  text: string;
  code?: string;
  site?: string;
}

export interface FederatedJob {
  id: number;
  name: string;
  initiator_site: string;
  strategy: Strategy;
  rounds: number;
  local_epochs: number;
  min_participants: number;
  round_deadline_seconds: number;
  starting_point: number | null;
  start_version: number | null;
  architecture: string;
  input_size: number;
  label_names: string[];
  config: Record<string, unknown>;
  status: FederatedStatus;
  status_text: string;
  current_round: number;
  final_version: number | null;
  error_code: string;
  message: string;
  events: FederatedEvent[];
  participants: Participant[];
  round_details: FederatedRound[];
  /** Once the job has finished: each site's check of the final model on its held-out images. */
  held_out?: HeldOutCheck[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}
