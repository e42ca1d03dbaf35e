import { describe, expect, it } from 'vitest';
import { csvRows, missingMaskAdvice, pairByManifest, pairByName, pairPicked, readersOf, readManifest, wrapperDepth, type Pairing } from './pairing';

const files = (...paths: string[]) => paths.map((path) => ({ path }));
/** A pairing as `{image: {reader: [mask paths]}}`, with the orphans' paths. */
function summary(p: Pairing<{ path: string }>) {
  return {
    images: Object.fromEntries(p.images.map((i) => [i.file.path, Object.fromEntries(i.masks.map((m) => [m.reader, m.files.map((f) => f.path)]))])),
    orphans: p.orphans.map((o) => o.file.path),
  };
}

describe('pairing images with their masks by name, as the site agent pairs a zip', () => {
  it('pairs an images folder with a masks folder by the same name or <name>_mask, and labels by the first folder', () => {
    const p = pairByName(files(
      'busi/benign/images/benign (1).png', 'busi/benign/masks/benign (1)_mask.png',
      'busi/normal/images/n 1.png', 'busi/normal/masks/n 1.png',
    ));
    expect(summary(p)).toEqual({
      images: {
        'busi/benign/images/benign (1).png': { '': ['busi/benign/masks/benign (1)_mask.png'] },
        'busi/normal/images/n 1.png': { '': ['busi/normal/masks/n 1.png'] },
      },
      orphans: [],
    });
    expect(p.images.map((i) => i.label)).toEqual(['benign', 'normal']);
  });

  it('keeps the parts of one mask together, in order (name_mask, name_mask_1, name_mask_2)', () => {
    const p = pairByName(files('a/images/x.png', 'a/masks/x_mask_2.png', 'a/masks/x_mask.png', 'a/masks/x_mask_1.png'));
    expect(summary(p).images['a/images/x.png']).toEqual({ '': ['a/masks/x_mask.png', 'a/masks/x_mask_1.png', 'a/masks/x_mask_2.png'] });
  });

  it('reads <name>_<reader> beside <name> as that reader’s mask (CHASE_DB1), but never a number', () => {
    const p = pairByName(files('chase/Image_01L.jpg', 'chase/Image_01L_1stHO.png', 'chase/Image_01L_2ndHO.png', 'chase/scan.png', 'chase/scan_2.png'));
    expect(summary(p)).toEqual({
      images: {
        'chase/Image_01L.jpg': { '1stHO': ['chase/Image_01L_1stHO.png'], '2ndHO': ['chase/Image_01L_2ndHO.png'] },
        'chase/scan.png': {},
        'chase/scan_2.png': {},
      },
      orphans: [],
    });
    expect(readersOf(p.images)).toEqual(['1stHO', '2ndHO']);
  });

  it('gives a mask to the image with the longest matching name', () => {
    const p = pairByName(files('d/images/a.png', 'd/images/a_b.png', 'd/masks/a_b_mask.png', 'd/masks/a_b_1stHO.png'));
    expect(summary(p).images).toEqual({ 'd/images/a.png': {}, 'd/images/a_b.png': { '': ['d/masks/a_b_mask.png'], '1stHO': ['d/masks/a_b_1stHO.png'] } });
    // Outside an images folder, <name>_<reader> beside <name> is a mask, as the site agent reads it.
    expect(summary(pairByName(files('d/a.png', 'd/a_b.png'))).images).toEqual({ 'd/a.png': { b: ['d/a_b.png'] } });
  });

  it('finds an image of the same name in another folder when its own folder has none', () => {
    const p = pairByName(files('set/images/case 7.png', 'set/other/masks/case 7_mask.png'));
    expect(summary(p).images['set/images/case 7.png']).toEqual({ '': ['set/other/masks/case 7_mask.png'] });
  });

  it('lists a mask without an image with what to rename, suggesting the image it was meant for', () => {
    const p = pairByName(files('s/images/Case-3.png', 's/masks/case_3_mask.png', 's/masks/ghost_mask.png'));
    expect(summary(p).orphans).toEqual(['s/masks/case_3_mask.png', 's/masks/ghost_mask.png']);
    expect(p.orphans[0].reason).toBe('case_3_mask.png looks like the mask of Case-3.png, but the names differ: rename it Case-3_mask.png.');
    expect(p.orphans[1].reason).toBe('ghost_mask.png is a mask, but there is no image named “ghost” (with any extension) beside it or in an images folder. Add that image, or rename the mask after its image (<image name>_mask.png); otherwise it is left out.');
    expect(p.images[0].masks).toEqual([]);
    expect(missingMaskAdvice('s/images/Case-3.png')).toBe('Case-3.png has no mask: add Case-3_mask.png beside it, or Case-3.png in a masks folder.');
  });

  it('drops the picked folder itself, but never an images or masks folder, and keeps folders below as labels', () => {
    expect(wrapperDepth(['top/images/a.png', 'top/masks/a.png'])).toBe(1);
    expect(wrapperDepth(['images/a.png', 'images/b.png'])).toBe(0);
    expect(wrapperDepth(['a.png', 'top/b.png'])).toBe(0);
    expect(pairByName(files('images/a.png', 'masks/a.png')).images[0].label).toBe('');
    expect(pairByName(files('pick/malignant/x.png', 'pick/malignant/x_mask.png')).images[0].label).toBe('malignant');
  });
});

describe('pairing by a CSV list at the top', () => {
  const picked = files('p/img/a.png', 'p/img/b.png', 'p/seg/a-r1.png', 'p/seg/a-r2.png', 'p/seg/b.png', 'p/img/c.png');

  it('pairs each line’s image with its mask and reader, and keeps the patient id and set', () => {
    const lines = readManifest('list.csv', 'Image;Mask;Observer;Patient;Split\nimg/a.png;seg/a-r1.png;r1;P1;train\nimg/a.png;seg/a-r2.png;r2;P1;\r\nimg/b.png;seg/b.png;;P2;Test\nb.png;;;;\n');
    const p = pairByManifest(picked, 'list.csv', lines);
    expect(summary(p).images).toEqual({ 'p/img/a.png': { r1: ['p/seg/a-r1.png'], r2: ['p/seg/a-r2.png'] }, 'p/img/b.png': { '': ['p/seg/b.png'] } });
    expect(p.images.map((i) => [i.patientId, i.split])).toEqual([['P1', 'train'], ['P2', 'test']]);
    expect(p.problems).toEqual(['list.csv, line 5: b.png matches several files (img/b.png, seg/b.png); write its folder too.']);
    expect(p.skipped.map((s) => s.reason)).toEqual(['c.png is not named on any usable line of list.csv: add a line for it, or leave it out.']);
  });

  it('says which line is wrong, and keeps the good lines', () => {
    const lines = readManifest('m.csv', 'image,mask,split,patient_id\nimg/a.png,seg/a-r1.png,later,\nimg/a.png,seg/a-r1.png,,P1\nimg/b.png,img/a.png,,\nimg/a.png,,,P9\n');
    const p = pairByManifest(picked, 'm.csv', lines);
    expect(p.problems).toEqual([
      'm.csv, line 2: the split must be train, val or test (or empty), not “later”.',
      'm.csv, line 4: img/a.png is an image on line 3; it cannot be a mask too.',
      'm.csv, line 5: it gives img/a.png the patient_id “P9”, but line 3 gave “P1”.',
    ]);
    expect(summary(p).images['p/img/a.png']).toEqual({ '': ['p/seg/a-r1.png'] });
  });

  it('refuses a list without an image column in words, and pairs nothing from it', async () => {
    expect(() => readManifest('x.csv', 'name,mask\na.png,a_mask.png\n')).toThrow('x.csv: its first line must name the columns (image, mask, reader, split, patient_id, label); it has no image column.');
    const texts: Record<string, string> = { 'p/list.csv': 'name,mask\n' };
    const p = await pairPicked(files('p/list.csv', 'p/a.png', 'p/a_mask.png'), async (f) => texts[f.path]);
    expect(p.images).toEqual([]);
    expect(p.problems[0]).toMatch(/no image column/);
  });

  it('reads quoted cells with commas, doubled quotes and line breaks', () => {
    expect(csvRows('a,"b, c","say ""hi"""\r\n"x\ny",z', ',')).toEqual([[1, ['a', 'b, c', 'say "hi"']], [2, ['x\ny', 'z']]]);
  });
});

describe('from picked files to what will be sent', () => {
  it('leaves out files that are not images, and pairs the rest by name when there is no list', async () => {
    const p = await pairPicked(files('chase/MD5SUMS', 'chase/notes.txt', 'chase/Image_01L.jpg', 'chase/Image_01L_1stHO.png'), async () => '');
    expect(p.skipped.map((s) => s.reason)).toEqual([
      'MD5SUMS is not an image (PNG, JPEG, TIFF or DICOM), so it is left out.',
      'notes.txt is not an image (PNG, JPEG, TIFF or DICOM), so it is left out.',
    ]);
    expect(summary(p).images).toEqual({ 'chase/Image_01L.jpg': { '1stHO': ['chase/Image_01L_1stHO.png'] } });
    expect(p.manifest).toBeNull();
  });

  it('uses the CSV list at the top, and refuses two lists rather than guess', async () => {
    const one = await pairPicked(files('p/pairs.csv', 'p/a.png', 'p/m.png'), async () => 'image,mask\na.png,m.png\n');
    expect(one.manifest).toBe('pairs.csv');
    expect(summary(one).images).toEqual({ 'p/a.png': { '': ['p/m.png'] } });
    const two = await pairPicked(files('p/a.csv', 'p/b.csv', 'p/a.png'), async () => 'image\na.png\n');
    expect(two.problems).toEqual(['There are several CSV lists at the top (a.csv, b.csv): keep only the one that pairs images and masks.']);
    expect(two.images).toEqual([]);
  });
});
