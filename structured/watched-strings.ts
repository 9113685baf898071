/**
 * Aho–Corasick's automaton over a set of strings, read a code point at a time: each node is the
 * longest end of the text so far that some of the strings start with, and names the strings that
 * end there. Structural tags' free text (structural-tag.ts) is built on it: the strings are what
 * the text may not contain (excludes, the enclosing tag's end) and the triggers that open a tag.
 */
export class WatchedStrings {
  /** Each node's next nodes in the trie, by code point; node 0 is the empty string. */
  private readonly children: Array<Map<number, number>> = [new Map()];
  /** Each node's longest proper suffix that is a node too. */
  private readonly fail: number[] = [0];
  /** The strings that end at each node: its own, and its suffixes'. */
  readonly ends: string[][] = [[]];

  constructor(strings: readonly string[]) {
    for (const s of strings) {
      let node = 0;
      for (const ch of s) {
        const c = ch.codePointAt(0)!;
        let child = this.children[node].get(c);
        if (child === undefined) {
          child = this.children.push(new Map()) - 1;
          this.fail.push(0);
          this.ends.push([]);
          this.children[node].set(c, child);
        }
        node = child;
      }
      if (node !== 0 && !this.ends[node].includes(s)) this.ends[node].push(s);
    }
    // Breadth first, so a node's suffix is linked before the node.
    const queue = [...this.children[0].values()];
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head];
      for (const [c, child] of this.children[node]) {
        this.fail[child] = node === 0 ? 0 : this.step(this.fail[node], c);
        this.ends[child].push(...this.ends[this.fail[child]].filter((s) => !this.ends[child].includes(s)));
        queue.push(child);
      }
    }
  }

  /** The node after code point `c` from `node`. */
  step(node: number, c: number): number {
    let at = node;
    for (;;) {
      const child = this.children[at].get(c);
      if (child !== undefined) return child;
      if (at === 0) return 0;
      at = this.fail[at];
    }
  }

  /** The code points that lead from `node` to a node other than the empty one, sorted. */
  leads(node: number): number[] {
    const out = new Set<number>();
    for (let at = node; ; at = this.fail[at]) {
      for (const c of this.children[at].keys()) out.add(c);
      if (at === 0) break;
    }
    return [...out].sort((a, b) => a - b);
  }
}
