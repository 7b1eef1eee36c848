// The call list's data: keyset-paged queries, a bounded page cache, and live updates.
//
// Pages are fetched in order with the previous page's `next_cursor`; only pages near the
// viewport keep their calls (far ones are dropped and fetched again with their own cursor when
// they come back into view), so memory stays bounded however far the user scrolls.
// Calls that arrive live and are newer than the first row go into `head`, above page 0.
import { commands, type CallPage, type CallQuery, type CallView } from "./bindings";
import { errorMessage } from "./dom";

export type FeedQuery = Omit<CallQuery, "limit" | "cursor">;

type Page = { cursor: string | null; calls: CallView[] | null; count: number; loading: boolean };

export type FeedChange =
  | { kind: "reset" }
  | { kind: "append" }
  | { kind: "update"; ids: number[] }
  | { kind: "insert"; positions: number[]; ids: number[] }
  | { kind: "reshape" }
  | { kind: "status" };

export const PAGE_SIZE = 150;
const PREFETCH_ROWS = 90;
const KEEP_PAGES = 24;

function time(c: CallView): number {
  return Date.parse(c.started_at);
}

/** True when `a` sorts above `b` (newest first: started_at, then id). */
export function isNewer(a: CallView, b: CallView): boolean {
  const ta = time(a);
  const tb = time(b);
  return ta > tb || (ta === tb && a.id > b.id);
}

export function hasFilters(q: FeedQuery): boolean {
  return Boolean(q.search || q.since || q.until || q.result || q.direction || q.extension || q.mine);
}

export class CallFeed {
  query: FeedQuery = {};
  head: CallView[] = [];
  pages: Page[] = [];
  private starts: number[] = [];
  private pagedLength = 0;
  nextCursor: string | null = null;
  done = false;
  total: number | null = null;
  /** Set instead of `total` when the count was capped ("1,000+ calls"). */
  totalAtLeast: number | null = null;
  status: "idle" | "loading" | "ready" | "error" = "idle";
  error: string | null = null;
  loadingNext = false;
  /** Live calls that arrived before the first page: applied once it is in. */
  private early: CallView[] = [];
  nextError: string | null = null;
  /** Requests issued, for diagnostics. */
  requests = 0;
  private gen = 0;
  private where = new Map<number, number>(); // call id → page index (-1 for head)
  private headRefresh = 0;
  private listeners = new Set<(c: FeedChange) => void>();

  onChange(fn: (c: FeedChange) => void): void {
    this.listeners.add(fn);
  }

  private emit(c: FeedChange): void {
    for (const l of this.listeners) l(c);
  }

  get length(): number {
    return this.head.length + this.pagedLength;
  }

  /** The call at list position `i`, or null when its page is not in memory (yet). */
  get(i: number): CallView | null {
    if (i < this.head.length) return this.head[i] ?? null;
    const j = i - this.head.length;
    const k = this.pageOf(j);
    if (k < 0) return null;
    const p = this.pages[k];
    return p.calls ? p.calls[j - this.starts[k]] ?? null : null;
  }

  indexOf(id: number): number {
    const k = this.where.get(id);
    if (k === undefined) return -1;
    if (k === -1) return this.head.findIndex((c) => c.id === id);
    const calls = this.pages[k]?.calls;
    if (!calls) return -1;
    const idx = calls.findIndex((c) => c.id === id);
    return idx < 0 ? -1 : this.head.length + this.starts[k] + idx;
  }

  byId(id: number): CallView | null {
    const i = this.indexOf(id);
    return i < 0 ? null : this.get(i);
  }

  private pageOf(j: number): number {
    let lo = 0;
    let hi = this.pages.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.starts[mid];
      if (j < s) hi = mid - 1;
      else if (j >= s + this.pages[mid].count) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  private restart(): void {
    this.starts = [];
    let s = 0;
    for (const p of this.pages) {
      this.starts.push(s);
      s += p.count;
    }
    this.pagedLength = s;
  }

  private request(cursor: string | null, limit = PAGE_SIZE): Promise<CallPage> {
    this.requests += 1;
    return commands.listCalls({ ...this.query, limit, cursor });
  }

  /** Runs a new query. The old rows stay until the new first page arrives (no flash). */
  async setQuery(q: FeedQuery): Promise<void> {
    this.query = q;
    const gen = ++this.gen;
    this.status = "loading";
    this.error = null;
    this.emit({ kind: "status" });
    try {
      const page = await this.request(null);
      if (gen !== this.gen) return;
      this.head = [];
      this.pages = [];
      this.where.clear();
      this.nextCursor = page.next_cursor;
      this.done = !page.next_cursor;
      this.total = page.total;
      this.totalAtLeast = page.total_at_least;
      this.loadingNext = false;
      this.nextError = null;
      this.addPage(null, page.calls);
      this.status = "ready";
      this.emit({ kind: "reset" });
      // Calls that changed while the page was on its way: the page may have been read just
      // before one was stored, and its only news was that event.
      const early = this.early;
      this.early = [];
      for (const c of early) this.applyLive(c);
    } catch (e) {
      if (gen !== this.gen) return;
      // The next successful load reads everything afresh; older news would roll rows back.
      this.early = [];
      this.status = "error";
      this.error = errorMessage(e);
      this.emit({ kind: "status" });
      throw e;
    }
  }

  reload(): Promise<void> {
    return this.setQuery(this.query);
  }

  private addPage(cursor: string | null, calls: CallView[]): void {
    const k = this.pages.length;
    const fresh = calls.filter((c) => !this.where.has(c.id));
    for (const c of fresh) this.where.set(c.id, k);
    this.pages.push({ cursor, calls: fresh, count: fresh.length, loading: false });
    this.restart();
  }

  /** Keeps the visible range backed by data: loads the next page near the end, re-fetches evicted pages, evicts far ones. */
  ensure(first: number, last: number): void {
    if (this.status !== "ready") return;
    if (!this.done && !this.loadingNext && !this.nextError && last >= this.length - PREFETCH_ROWS) void this.loadNext();
    const h = this.head.length;
    const a = this.pageOf(Math.max(0, first - h));
    const b = this.pageOf(Math.max(0, Math.min(this.pagedLength - 1, last - h)));
    if (a >= 0 && b >= 0) {
      for (let k = a; k <= b; k++) {
        const p = this.pages[k];
        if (!p.calls && !p.loading) void this.refetch(k);
      }
      this.evict(a, b);
    }
  }

  async loadNext(): Promise<void> {
    if (this.loadingNext || this.done || this.status !== "ready") return;
    const gen = this.gen;
    const cursor = this.nextCursor;
    this.loadingNext = true;
    this.nextError = null;
    this.emit({ kind: "status" });
    try {
      const page = await this.request(cursor);
      if (gen !== this.gen) return;
      this.loadingNext = false;
      this.addPage(cursor, page.calls);
      this.nextCursor = page.next_cursor;
      this.done = !page.next_cursor;
      this.emit({ kind: "append" });
    } catch (e) {
      if (gen !== this.gen) return;
      this.loadingNext = false;
      this.nextError = errorMessage(e);
      this.emit({ kind: "status" });
    }
  }

  retryNext(): void {
    this.nextError = null;
    void this.loadNext();
  }

  private async refetch(k: number): Promise<void> {
    const p = this.pages[k];
    const gen = this.gen;
    p.loading = true;
    try {
      const page = await this.request(p.cursor);
      if (gen !== this.gen) return;
      p.loading = false;
      const calls = page.calls.filter((c) => this.where.get(c.id) === undefined || this.where.get(c.id) === k).slice(0, Math.max(p.count, 0) || undefined);
      for (const c of calls) this.where.set(c.id, k);
      const reshaped = calls.length !== p.count;
      p.calls = calls;
      p.count = calls.length;
      if (reshaped) {
        this.restart();
        this.emit({ kind: "reshape" });
      } else {
        this.emit({ kind: "update", ids: calls.map((c) => c.id) });
      }
    } catch {
      if (gen === this.gen) p.loading = false;
    }
  }

  private evict(a: number, b: number): void {
    const held: number[] = [];
    this.pages.forEach((p, k) => {
      if (p.calls && k !== 0) held.push(k);
    });
    if (held.length <= KEEP_PAGES) return;
    held.sort((x, y) => Math.abs(y - (a + b) / 2) - Math.abs(x - (a + b) / 2));
    for (const k of held.slice(0, held.length - KEEP_PAGES)) {
      if (k >= a - 1 && k <= b + 1) continue;
      const p = this.pages[k];
      for (const c of p.calls ?? []) this.where.delete(c.id);
      p.calls = null;
    }
  }

  /** Number of pages whose calls are held in memory. */
  get heldPages(): number {
    return this.pages.reduce((n, p) => n + (p.calls ? 1 : 0), 0);
  }

  /** A call changed (live event). */
  applyLive(call: CallView): void {
    // While a page is on its way it may have been read before this change: kept, and applied
    // on top of the page once it is in (for rows already shown too).
    if (this.status === "loading" || this.status === "idle") {
      this.early.push(call);
      return;
    }
    const k = this.where.get(call.id);
    if (k !== undefined) {
      if (k === -1) {
        const i = this.head.findIndex((c) => c.id === call.id);
        if (i >= 0) this.head[i] = call;
      } else {
        const calls = this.pages[k]?.calls;
        const i = calls ? calls.findIndex((c) => c.id === call.id) : -1;
        if (calls && i >= 0) calls[i] = call;
      }
      this.emit({ kind: "update", ids: [call.id] });
      return;
    }
    if (this.status !== "ready") return;
    if (!hasFilters(this.query)) {
      this.insertSorted([call]);
      return;
    }
    // Filtered view: the engine decides what matches. Ask for the newest few and merge.
    if (this.headRefresh) window.clearTimeout(this.headRefresh);
    this.headRefresh = window.setTimeout(() => {
      this.headRefresh = 0;
      void this.refreshHead();
    }, 60);
  }

  private async refreshHead(): Promise<void> {
    const gen = this.gen;
    try {
      const page = await this.request(null, 25);
      if (gen !== this.gen || this.status !== "ready") return;
      this.insertSorted(page.calls);
    } catch {
      // A failed refresh only delays the new row until the next event or query.
    }
  }

  /**
   * Puts calls the list has not seen at their place (newest first). A call newer than every
   * row goes into `head`; an older one goes into the loaded page it belongs to. Calls older than
   * everything loaded are left for the next page, which will contain them.
   */
  private insertSorted(calls: CallView[]): void {
    const fresh = calls.filter((c) => !this.where.has(c.id)).sort((a, b) => (isNewer(a, b) ? -1 : isNewer(b, a) ? 1 : 0));
    const positions: number[] = [];
    const ids: number[] = [];
    for (const c of fresh) {
      const at = this.place(c);
      if (at >= 0) {
        positions.push(at);
        ids.push(c.id);
      }
    }
    if (!positions.length) return;
    if (this.total !== null) this.total += positions.length;
    this.emit({ kind: "insert", positions, ids });
  }

  private place(c: CallView): number {
    const firstPaged = this.pages[0]?.calls?.[0] ?? null;
    if (!firstPaged || isNewer(c, firstPaged)) {
      let i = 0;
      while (i < this.head.length && isNewer(this.head[i], c)) i++;
      this.head.splice(i, 0, c);
      this.where.set(c.id, -1);
      if (this.pages.length === 0) {
        this.pages.push({ cursor: null, calls: [], count: 0, loading: false });
        this.restart();
      }
      return i;
    }
    for (let k = 0; k < this.pages.length; k++) {
      const p = this.pages[k];
      if (!p.calls) return -1;
      const last = p.calls[p.calls.length - 1];
      if ((last && isNewer(c, last)) || (k === this.pages.length - 1 && this.done)) {
        let i = 0;
        while (i < p.calls.length && isNewer(p.calls[i], c)) i++;
        p.calls.splice(i, 0, c);
        p.count += 1;
        this.where.set(c.id, k);
        this.restart();
        return this.head.length + this.starts[k] + i;
      }
    }
    return -1;
  }
}
