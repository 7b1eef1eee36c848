// Small observable values shared by the views (health, settings, pause state).
import type { HealthView, PauseState, SettingsView } from "./bindings";

export class Observable<T> {
  private subs = new Set<(v: T) => void>();
  constructor(private current: T) {}
  get value(): T {
    return this.current;
  }
  set(v: T): void {
    this.current = v;
    for (const s of [...this.subs]) s(v);
  }
  subscribe(fn: (v: T) => void, immediate = true): () => void {
    this.subs.add(fn);
    if (immediate) fn(this.current);
    return () => this.subs.delete(fn);
  }
}

export const health = new Observable<HealthView | null>(null);
export const settings = new Observable<SettingsView | null>(null);
export const pause = new Observable<PauseState | null>(null);
