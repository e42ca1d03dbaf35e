/** The names of what a segmentation dataset's masks mark (values 1, 2, ...; 0 is background), checked as the hub checks them. */

const MAX_CLASSES = 20;

/** "lesion, vessel" → ["lesion", "vessel"] (blank entries dropped). */
export function splitNames(text: string): string[] {
  return text.split(',').map((name) => name.trim()).filter(Boolean);
}

/**
 * What is wrong with a list of mask classes, in words, or "" when nothing is (the hub's rules in
 * platform/pollen/datasets/masks.py: mask_classes_check; the hub has the last word).
 */
export function maskClassProblem(classes: string[]): string {
  if (!classes.length) return 'Name what your masks mark, for example “lesion”.';
  const long = classes.find((name) => name.length > 100);
  if (long) return `“${long.slice(0, 40)}…” is too long: a name has at most 100 characters.`;
  if (classes.some((name) => name.toLowerCase() === 'background')) {
    return '“background” is what the masks leave unmarked (the value 0): name only what they mark.';
  }
  const seen = new Set<string>();
  for (const name of classes) {
    if (seen.has(name.toLowerCase())) return `“${name}” is listed twice: name each kind of mark once.`;
    seen.add(name.toLowerCase());
  }
  if (classes.length > MAX_CLASSES) return `A dataset can have at most ${MAX_CLASSES} kinds of marks; you listed ${classes.length}.`;
  return '';
}
