/**
 * Thompson's construction, shared by the regex engine (linear-regex.ts) and the grammar compiler
 * (structured/ebnf-grammar.ts): sequences, alternatives and repeats become split states around
 * their parts, and each leaf (a character test, an anchor, a rule call) is one state the caller
 * makes. Counted repeats are expanded into copies.
 */
export type Regular<Leaf> =
  | Leaf
  | { kind: 'seq'; items: Regular<Leaf>[] }
  | { kind: 'alt'; options: Regular<Leaf>[] }
  | { kind: 'repeat'; item: Regular<Leaf>; min: number; max: number };

export interface SplitState {
  op: 'split';
  next: number;
  alt: number;
}

type Composite<Leaf> = Exclude<Regular<Leaf>, Leaf>;

/**
 * The entry state of `node`, whose states continue at `next`. `addSplit` appends a split state
 * and returns its index (a loop's split gets its `next` set after its body is built); `addLeaf`
 * appends a leaf's state.
 */
export function thompson<Leaf extends { kind: string }>(
  node: Regular<Leaf>,
  next: number,
  addSplit: (state: SplitState) => number,
  addLeaf: (leaf: Leaf, next: number) => number,
): number {
  const build = (n: Regular<Leaf>, then: number) => thompson(n, then, addSplit, addLeaf);
  const c = node as Composite<Leaf>;
  switch (c.kind) {
    case 'seq': {
      let entry = next;
      for (let i = c.items.length - 1; i >= 0; i--) entry = build(c.items[i], entry);
      return entry;
    }
    case 'alt': {
      const entries = c.options.map((o) => build(o, next));
      let entry = entries[entries.length - 1];
      for (let i = entries.length - 2; i >= 0; i--)
        entry = addSplit({ op: 'split', next: entries[i], alt: entry });
      return entry;
    }
    case 'repeat': {
      let entry = next;
      if (c.max === Number.POSITIVE_INFINITY) {
        // A loop: split → body → back to the split, or on to next.
        const loop: SplitState = { op: 'split', next: -1, alt: next };
        entry = addSplit(loop);
        loop.next = build(c.item, entry);
      } else
        for (let i = c.min; i < c.max; i++)
          entry = addSplit({ op: 'split', next: build(c.item, entry), alt: next });
      for (let i = 0; i < c.min; i++) entry = build(c.item, entry);
      return entry;
    }
    default:
      return addLeaf(node as Leaf, next);
  }
}
