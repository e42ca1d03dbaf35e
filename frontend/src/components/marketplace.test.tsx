import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render, screen } from '@testing-library/react';
import { layoutLineage, LineageGraph, NODE_H, NODE_W } from './LineageGraph';
import { ProbabilityBars, probabilityRows } from './ProbabilityBars';
import { SampleGallery } from './Heatmaps';
import { topError } from '../pages/Train';
import { ApiError } from '../api/client';
import type { Lineage } from '../api/types';

afterEach(cleanup);

const LINEAGE: Lineage = {
  parents: [
    { visible: true, site: 'st-anne', name: 'Parent', published_model: 3, version_number: 2 },
    { visible: false, description: 'A model at another site' },
  ],
  descendants: [
    { visible: true, site: 'borough', name: 'Child A', published_model: 9, version_number: 1, generation: 1 },
    { visible: false, description: 'A model at another site', generation: 1 },
    { visible: true, site: 'borough', name: 'Grandchild', generation: 2 },
  ],
};

describe('layoutLineage', () => {
  it('puts the oldest ancestor on top, this model next, then each generation on its own row', () => {
    const { nodes, edges, width, height } = layoutLineage(LINEAGE, { title: 'This one', subtitle: 'st-anne' });
    const rowOf = (title: string) => nodes.find((n) => n.title === title)!.y / (NODE_H + 28);
    expect(rowOf('A model at another site')).toBe(0); // nearest parent listed first by the API: drawn just above
    expect(rowOf('Parent')).toBe(1);
    expect(rowOf('This one')).toBe(2);
    expect(rowOf('Child A')).toBe(3);
    expect(rowOf('Grandchild')).toBe(4);
    expect(height).toBe(5 * NODE_H + 4 * 28);
    expect(width).toBe(2 * NODE_W + 40); // the widest row has two models
    // Rows are centred: a single node sits in the middle of the widest row.
    const self = nodes.find((n) => n.current)!;
    expect(self.x + NODE_W / 2).toBeCloseTo(width / 2);
    // A chain through the ancestors to this model, then to both children.
    expect(edges.filter((e) => e.from === 'self').map((e) => e.to)).toEqual(['d1-0', 'd1-1']);
    expect(edges).toHaveLength(2 + 2); // p→p, p→self, self→two children; grandchild hangs from two siblings: not drawn
  });

  it('never names a model the caller may not see, and links only published ones', () => {
    const { nodes } = layoutLineage(LINEAGE, { title: 'This one', subtitle: '' });
    const hidden = nodes.filter((n) => n.node && !n.node.visible);
    expect(hidden.map((n) => n.title)).toEqual(['A model at another site', 'A model at another site']);
    expect(hidden.every((n) => n.href === null)).toBe(true);
    expect(nodes.find((n) => n.title === 'Child A')!.href).toBe('/marketplace/models/9');
    expect(nodes.find((n) => n.title === 'Grandchild')!.href).toBeNull();
  });

  it('draws a labelled SVG with a sentence for screen readers', () => {
    render(<LineageGraph lineage={{ parents: [], descendants: [] }} title="Solo" subtitle="st-anne" />);
    const svg = screen.getByRole('img', { name: /Lineage of Solo/ });
    expect(svg.querySelector('desc')?.textContent).toMatch(/Not built on another model.*no model has been built on it yet/);
  });
});

describe('ProbabilityBars', () => {
  it('reads either shape and puts the likeliest first', () => {
    expect(probabilityRows({ normal: 0.2, mass: 0.8 }, [])).toEqual([['mass', 0.8], ['normal', 0.2]]);
    expect(probabilityRows([0.3, 0.7], ['normal', 'mass'])).toEqual([['mass', 0.7], ['normal', 0.3]]);
    expect(probabilityRows([0.5, NaN], ['a', 'b'])).toEqual([['a', 0.5]]);
    expect(probabilityRows(null, [])).toEqual([]);
  });

  it('renders one labelled meter per label with its value in words', () => {
    render(<ProbabilityBars probabilities={{ normal: 0.125, mass: 0.875 }} labels={[]} />);
    const meters = screen.getAllByRole('meter');
    expect(meters).toHaveLength(2);
    expect(screen.getAllByRole('meter', { name: 'mass' })[0]).toBe(meters[0]);
    expect(meters[0].getAttribute('aria-valuenow')).toBe('88');
    expect(meters[0].getAttribute('aria-valuetext')).toMatch(/likely/);
    expect((meters[0].firstChild as HTMLElement).style.width).toBe('88%');
  });

  it('says so when there is no answer', () => {
    render(<ProbabilityBars probabilities={undefined} labels={['a']} />);
    expect(screen.getByText(/No answer/)).toBeTruthy();
  });
});

describe('SampleGallery', () => {
  it('shows each heatmap with the label and the model’s answer, and says when one is missing', () => {
    render(
      <SampleGallery
        samples={[
          { image_id: 1, label: 'mass', predicted: 'mass', probability: 0.9, overlay_url: '/local-storage/x.png' },
          { image_id: 2, label: 'normal', predicted: 'mass', probability: 0.6, overlay_url: null },
        ]}
      />,
    );
    expect(screen.getByRole('img', { name: /check image 1, labelled “mass”/ }).getAttribute('src')).toBe('/local-storage/x.png');
    expect(screen.getByText('agrees with the label')).toBeTruthy();
    expect(screen.getByText('disagrees with the label')).toBeTruthy();
    expect(screen.getByText(/Heatmap not available/)).toBeTruthy();
  });

  it('names each check image by its file where the hub knows it', () => {
    render(<SampleGallery samples={[{ image_id: 311, label: 'mass', predicted: 'mass', overlay_url: '/x.png', filename: 'patient-4-left.png' }]} />);
    expect(screen.getByRole('img', { name: 'Heatmap of where the model looked on check image patient-4-left.png, labelled “mass”' })).toBeTruthy();
    expect(screen.getByText('patient-4-left.png')).toBeTruthy();
    expect(document.body.textContent).not.toMatch(/311/);
  });
});

describe('train page: the hub’s reason is shown once', () => {
  it('points to the field when the same sentence is shown next to it', () => {
    const message = "The label 'mass' has too few images in the validation set (0). Add images of this label from more patients.";
    const error = new ApiError(400, { code: 'dataset_not_ready', message, fields: { dataset: [message] } });
    const shown = topError(error, error.fields) as Error;
    expect(shown.message).not.toContain('too few images');
    expect(shown.message).toMatch(/shown under the images you chose/);
  });

  it('keeps a reason that is not shown anywhere else', () => {
    const error = new ApiError(409, { code: 'conflict', message: 'This dataset is being deleted.' });
    expect(topError(error, error.fields)).toBe(error);
  });
});
