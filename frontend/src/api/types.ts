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
  image_count: number;
  accepted_count: number;
  rejected_count: number;
  pending_count: number;
  status?: 'active' | 'deleting';
  created_at: string;
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

export type ImageStatus = 'pending' | 'accepted' | 'rejected';

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
  /** Binary tasks only: for the positive label (the second label). */
  sensitivity?: number | null;
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
}

export interface Job {
  id: number | string;
  dataset: number | string;
  dataset_name?: string;
  site?: string;
  starting_point?: number | string;
  starting_point_name?: string;
  recipe?: string;
  status: JobStatus;
  status_text?: string;
  cancel_requested?: boolean;
  error_code?: string;
  progress: Partial<JobProgress> | null;
  message: string;
  history: HistoryPoint[];
  evaluation: Evaluation | null;
  model_version: unknown;
  created_at?: string;
}
