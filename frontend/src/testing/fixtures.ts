import type { Dataset, Evaluation, Job } from '../api/types';

/** A whole training run as GET /jobs/{id}/ answers it (every field the schema promises). */
export function jobFixture(extra: Partial<Job> = {}): Job {
  return {
    id: 7, site: 'st-anne', name: 'Chest X-ray model', dataset: 2, dataset_name: 'Chest X-rays', task: 'classification', recipe: 'full',
    starting_point: 1, starting_point_name: 'Small CNN', parent_version: null, config: {}, label_names: ['normal', 'pneumonia'],
    positive_class: 'pneumonia', status: 'running', status_text: '', queue: null, attempt: 1, cancel_requested: false,
    progress: null, history: [], evaluation: null, timings: {}, events: [], checkpoint_epoch: null, error_code: '',
    message: '', model_version: null, parent_comparison: null, created_at: '2026-01-01T00:00:00Z', started_at: null,
    finished_at: null, ...extra,
  };
}

/** A dataset as GET /datasets/{id}/ answers it; by default a segmentation dataset of lesion masks. */
export function datasetFixture(extra: Partial<Dataset> = {}): Dataset {
  return {
    id: 4, site: 'st-anne', name: 'Breast ultrasound', description: '', modality: 'ultrasound', task: 'segmentation',
    label_names: [], positive_class: '', mask_classes: ['lesion'], masks_required: true, reference_reader: '', status: 'active',
    image_count: 0, accepted_count: 0, rejected_count: 0, pending_count: 0, uploading_count: 0, unfinished_count: 0,
    created_at: '2026-01-01T00:00:00Z', ...extra,
  };
}

/** A segmentation model's final check, as the site agent reports it (workers/pollen_agent/ml/segmentation/metrics.py). */
export const EVALUATION: Evaluation = {
  task: 'segmentation',
  label_names: ['background', 'lesion'],
  images: 160,
  lesion_images: 130,
  dice: 0.804,
  dice_ci: [0.771, 0.833],
  lesion_dice: 0.79,
  lesion_dice_ci: [0.75, 0.82],
  iou: 0.713,
  pooled_dice: 0.791,
  hd95_median: 9.94,
  detection: { found: 118, missed: 14, false: 9, sensitivity: 0.894, false_per_image: 0.056 },
  empty_images: 30,
  empty_correct: 24,
  empty_correct_fraction: 0.8,
  dice_histogram: { edges: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1], counts: [6, 1, 0, 2, 3, 4, 8, 20, 46, 70] },
  worst: [
    { image_id: '311', dice: 0, has_finding: false, drew_something: true },
    { image_id: '87', dice: 0.04, has_finding: true, drew_something: false },
  ],
};
