// A fixed-row-height virtual list: only the rows in view (plus overscan) exist in the DOM, and
// row elements are recycled. Rows are positioned with transforms inside a spacer whose height
// stands for every row loaded so far.

export interface VirtualListOptions {
  viewport: HTMLElement;
  rowHeight: number;
  overscan: number;
  createRow(): HTMLElement;
  renderRow(el: HTMLElement, index: number): void;
  /** A row element left the viewport and waits for reuse (forget its identity). */
  releaseRow?(el: HTMLElement): void;
  /** Called after each render with the visible (not overscanned) index range. */
  onRender?(first: number, last: number): void;
  /** An element placed after the last row (loading / end-of-list line). */
  footer?: HTMLElement;
}

export class VirtualList {
  readonly spacer: HTMLElement;
  private count = 0;
  private rendered = new Map<number, HTMLElement>();
  private free: HTMLElement[] = [];
  private viewportHeight = 0;
  private frame = 0;
  private readonly o: VirtualListOptions;

  constructor(o: VirtualListOptions) {
    this.o = o;
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    o.viewport.append(this.spacer);
    if (o.footer) {
      o.footer.style.height = `${o.rowHeight}px`;
      this.spacer.append(o.footer);
    }
    o.viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    const ro = new ResizeObserver(() => {
      const hgt = o.viewport.clientHeight;
      if (hgt !== this.viewportHeight) {
        this.viewportHeight = hgt;
        this.update();
      }
    });
    ro.observe(o.viewport);
    this.viewportHeight = o.viewport.clientHeight;
    this.setCount(0);
  }

  get length(): number {
    return this.count;
  }

  get rowHeight(): number {
    return this.o.rowHeight;
  }

  /** Rows that fit in the viewport. */
  get pageRows(): number {
    return Math.max(1, Math.floor(this.viewportHeight / this.o.rowHeight));
  }

  private layoutSpacer(): void {
    const footer = this.o.footer && !this.o.footer.hidden ? this.o.rowHeight : 0;
    this.spacer.style.height = `${this.count * this.o.rowHeight + footer}px`;
    if (this.o.footer) this.o.footer.style.transform = `translateY(${this.count * this.o.rowHeight}px)`;
  }

  setCount(n: number): void {
    this.count = n;
    for (const [i, el] of this.rendered) {
      if (i >= n) this.release(i, el);
    }
    this.layoutSpacer();
    this.schedule();
  }

  /** The footer's visibility changed: re-measure. */
  footerChanged(): void {
    this.layoutSpacer();
  }

  /**
   * `n` rows were inserted at position `index`. Rendered elements keep their content; when the
   * new rows are above the viewport the scroll offset moves with them, so what the user is
   * looking at does not jump (at the very top, new rows slide into view instead).
   */
  insertAt(index: number, n: number): { shifted: boolean } {
    if (n <= 0) return { shifted: false };
    const vp = this.o.viewport;
    const rh = this.o.rowHeight;
    const atTop = vp.scrollTop < 2;
    const firstVisible = Math.floor(vp.scrollTop / rh);
    const moved = new Map<number, HTMLElement>();
    for (const [i, el] of this.rendered) {
      const j = i >= index ? i + n : i;
      moved.set(j, el);
      if (j !== i) el.style.transform = `translateY(${j * rh}px)`;
    }
    this.rendered = moved;
    this.count += n;
    this.layoutSpacer();
    const shifted = !atTop && index <= firstVisible;
    if (shifted) vp.scrollTop += n * rh;
    this.update();
    return { shifted };
  }

  /** Re-renders every visible row (renderRow is expected to skip rows whose data is unchanged). */
  refresh(): void {
    for (const [i, el] of this.rendered) this.o.renderRow(el, i);
  }

  /** Forgets every rendered row's identity and renders again (after a data reset). */
  reset(scrollTop?: number): void {
    for (const [i, el] of this.rendered) this.release(i, el);
    if (scrollTop !== undefined) this.o.viewport.scrollTop = scrollTop;
    this.update();
  }

  scrollToIndex(i: number, align: "nearest" | "start" | "center" = "nearest"): void {
    const vp = this.o.viewport;
    const rh = this.o.rowHeight;
    const top = i * rh;
    const bottom = top + rh;
    if (align === "start") vp.scrollTop = top;
    else if (align === "center") vp.scrollTop = Math.max(0, top - (this.viewportHeight - rh) / 2);
    else if (top < vp.scrollTop) vp.scrollTop = top;
    else if (bottom > vp.scrollTop + this.viewportHeight) vp.scrollTop = bottom - this.viewportHeight;
    this.update();
  }

  visibleRange(): [number, number] {
    const rh = this.o.rowHeight;
    const top = this.o.viewport.scrollTop;
    const first = Math.min(Math.max(0, this.count - 1), Math.floor(top / rh));
    const last = Math.min(this.count - 1, Math.ceil((top + this.viewportHeight) / rh) - 1);
    return [first, Math.max(first, last)];
  }

  /** The element currently rendering row `i`, if any. */
  elementAt(i: number): HTMLElement | undefined {
    return this.rendered.get(i);
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.update();
    });
  }

  private release(i: number, el: HTMLElement): void {
    this.rendered.delete(i);
    el.hidden = true;
    this.o.releaseRow?.(el);
    this.free.push(el);
  }

  update(): void {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    const rh = this.o.rowHeight;
    if (this.count === 0) {
      for (const [i, el] of this.rendered) this.release(i, el);
      this.o.onRender?.(0, -1);
      return;
    }
    const [first, last] = this.visibleRange();
    const start = Math.max(0, first - this.o.overscan);
    const end = Math.min(this.count - 1, last + this.o.overscan);
    for (const [i, el] of this.rendered) {
      if (i < start || i > end) this.release(i, el);
    }
    for (let i = start; i <= end; i++) {
      let el = this.rendered.get(i);
      if (!el) {
        el = this.free.pop();
        if (!el) {
          el = this.o.createRow();
          el.style.height = `${rh}px`;
          this.spacer.append(el);
        }
        el.hidden = false;
        el.style.transform = `translateY(${i * rh}px)`;
        this.rendered.set(i, el);
      }
      this.o.renderRow(el, i);
    }
    this.o.onRender?.(first, last);
  }
}
