/**
 * Prints the top functions of a V8 `.cpuprofile` (from `deno run --cpu-prof`) by self time and
 * by total (inclusive) time, to diagnose where a server or the load client spends its CPU.
 *
 * ```sh
 * deno run --allow-read bench/profile_top.ts .artifacts/bench/prof/server.cpuprofile [count]
 * ```
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary. */
export interface ProfileRow {
  /** `name (file:line)`. */
  name: string;
  /** Share of samples in the function itself. */
  selfPercent: number;
  /** Share of samples in the function or what it called. */
  totalPercent: number;
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url.replace(/^.*\/(src|bench|ext|runtime)\//, "$1/");
  return `${functionName || "(anonymous)"}${file ? ` (${file}:${lineNumber + 1})` : ""}`;
}

/**
 * Summarizes a profile: every function with its self and inclusive share of samples. With
 * `busyOnly`, shares are of the samples where the thread was not idle (a server's profile spans
 * its whole life, mostly waiting), and "(idle)" is left out.
 */
export function summarizeProfile(profile: Profile, busyOnly = false): ProfileRow[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let counted = 0;
  for (const id of profile.samples) {
    const node = byId.get(id)!;
    if (busyOnly && label(node) === "(idle)") continue;
    counted++;
    self.set(label(node), (self.get(label(node)) ?? 0) + 1);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = label(byId.get(at)!);
      if (seen.has(name)) continue; // count recursion once
      seen.add(name);
      total.set(name, (total.get(name) ?? 0) + 1);
    }
  }
  const n = counted || 1;
  return [...total.keys()].map((name) => ({
    name,
    selfPercent: (100 * (self.get(name) ?? 0)) / n,
    totalPercent: (100 * total.get(name)!) / n,
  }));
}

if (import.meta.main) {
  const [path, countText] = Deno.args;
  if (!path) {
    console.error("Usage: profile_top.ts FILE.cpuprofile [count]");
    Deno.exit(2);
  }
  const count = Number(countText ?? 25);
  const profile = JSON.parse(await Deno.readTextFile(path));
  const all = summarizeProfile(profile);
  const idle = all.find((r) => r.name === "(idle)")?.selfPercent ?? 0;
  console.log(`idle: ${idle.toFixed(1)}% of samples; shares below are of the busy samples`);
  const rows = summarizeProfile(profile, true);
  const show = (title: string, key: "selfPercent" | "totalPercent") => {
    console.log(`\n${title}`);
    for (const r of [...rows].sort((a, b) => b[key] - a[key]).slice(0, count)) {
      console.log(
        `${r.selfPercent.toFixed(1).padStart(6)}% self ${
          r.totalPercent.toFixed(1).padStart(6)
        }% total  ${r.name}`,
      );
    }
  };
  show("By self time:", "selfPercent");
  show("By total time:", "totalPercent");
}
