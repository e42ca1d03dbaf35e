import type { Job } from '../api/types';

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
