import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { Membership } from '../api/types';
import { CreateDataset } from './Datasets';
import { fakeHub, refusal } from '../testing/fakeHub';
import { datasetFixture } from '../testing/fixtures';
import { maskClassProblem } from '../lib/maskClasses';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, '', '/');
});

const SITE = { site: { slug: 'st-anne', name: 'St Anne' }, role: 'clinician' } as Membership;

function open(routes = {}) {
  vi.stubGlobal('scrollTo', () => {}); // creating a dataset opens its page
  const hub = fakeHub({ 'POST /datasets/': datasetFixture({ id: 9 }), ...routes });
  render(<CreateDataset site={SITE} onCancel={() => {}} />);
  fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'Breast ultrasound' } });
  return hub;
}

describe('a new dataset: a label or an outline per image', () => {
  it('asks what the images are labelled with, a label per image by default', () => {
    open();
    expect(screen.getByRole('group', { name: 'What will your images be labelled with?' })).toBeTruthy();
    expect(screen.getByRole('radio', { name: /A label per image/ })).toHaveProperty('checked', true);
    expect(screen.queryByLabelText(/What do the masks mark/)).toBeNull();
    expect(screen.getByLabelText(/Labels, if you know them/)).toBeTruthy();
  });

  it('creates a segmentation dataset with its mask classes and whether every image needs a mask', async () => {
    const hub = open();
    fireEvent.click(screen.getByRole('radio', { name: /An outline \(mask\) per image/ }));
    expect(screen.queryByLabelText(/Labels, if you know them/)).toBeNull();
    fireEvent.change(screen.getByLabelText(/What do the masks mark/), { target: { value: 'lesion, calcification ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create dataset' }));
    await waitFor(() => expect(hub.sent('POST', '/datasets/')).toHaveLength(1));
    expect(hub.sent('POST', '/datasets/')[0].body).toEqual({
      site: 'st-anne', name: 'Breast ultrasound', description: '', task: 'segmentation', mask_classes: ['lesion', 'calcification'], masks_required: true,
    });
    await waitFor(() => expect(window.location.pathname).toBe('/sites/st-anne/datasets/9'));
  });

  it('says in plain words what is wrong with the mask classes, next to the field, and sends nothing', () => {
    const hub = open();
    fireEvent.click(screen.getByRole('radio', { name: /An outline \(mask\) per image/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Create dataset' }));
    const field = screen.getByLabelText(/What do the masks mark/);
    expect(field.getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByText('Name what your masks mark, for example “lesion”.').id).toBe('ds-mask-classes-error');
    fireEvent.change(field, { target: { value: 'Background, lesion' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create dataset' }));
    expect(screen.getByText(/“background” is what the masks leave unmarked \(the value 0\)/)).toBeTruthy();
    expect(hub.sent('POST', '/datasets/')).toHaveLength(0);
  });

  it('shows the hub’s refusal of the mask classes under the field', async () => {
    const message = "Name what your masks mark (for example 'lesion'): a segmentation dataset needs at least one mask class.";
    open({ 'POST /datasets/': refusal(400, 'mask_classes_required', message) });
    fireEvent.click(screen.getByRole('radio', { name: /An outline \(mask\) per image/ }));
    fireEvent.change(screen.getByLabelText(/What do the masks mark/), { target: { value: 'lesion' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create dataset' }));
    expect((await screen.findByText(message)).id).toBe('ds-mask-classes-error');
    expect(screen.getByRole('alert').textContent).toBe('The dataset was not created: see “What do the masks mark?” below.');
  });

  it('checks mask classes as the hub does', () => {
    expect(maskClassProblem(['lesion'])).toBe('');
    expect(maskClassProblem(['lesion', 'Lesion'])).toBe('“Lesion” is listed twice: name each kind of mark once.');
    expect(maskClassProblem(Array.from({ length: 21 }, (_, i) => `c${i}`))).toMatch(/at most 20 kinds of marks; you listed 21/);
    expect(maskClassProblem(['x'.repeat(101)])).toMatch(/at most 100 characters/);
  });
});
