/**
 * The run observer: who is told of every stream run's life (the recorder), and the guard that keeps an
 * observer's failure its own; the window watcher, who is told of every change of a live window (the
 * cluster's mirror).
 */
import type { Logger } from '../core/index.js';
import type { CompletedSegment, LiveRendition, WindowChange } from './rendition.js';

/** What a window watcher reads of a stream's package (StreamPackage is one). */
export interface WatchedPackage {
  readonly streamId: string;
  readonly runId: string;
  readonly renditions: readonly LiveRendition[];
  readonly playable: boolean;
  readonly closing: boolean;
  multivariant(): string | undefined;
}

/**
 * Told of every stream run's life (the recorder). Calls are synchronous and in order for one run: start,
 * segments (each rendition's in order), end. An observer that throws is logged; packaging goes on.
 */
export interface PackageObserver {
  runStart(streamId: string, runId: string): void;
  segment(streamId: string, runId: string, rendition: string, seg: CompletedSegment): void;
  /** 'ended': the stream ended (after the reconnect grace); 'closed': the server is shutting down. */
  runEnd(streamId: string, runId: string, why: 'ended' | 'closed'): void;
}

/** One run's calls to its observer: start at once, each segment, the end once; failures logged. */
export class RunObserver {
  readonly #observer: PackageObserver;
  readonly #streamId: string;
  readonly #runId: string;
  readonly #log: Logger;
  #ended = false;

  constructor(observer: PackageObserver, streamId: string, runId: string, log: Logger) {
    this.#observer = observer;
    this.#streamId = streamId;
    this.#runId = runId;
    this.#log = log;
    this.#call(() => observer.runStart(streamId, runId));
  }

  /** The run has been told it ended. */
  get ended(): boolean {
    return this.#ended;
  }

  segment(rendition: string, seg: CompletedSegment): void {
    this.#call(() => this.#observer.segment(this.#streamId, this.#runId, rendition, seg));
  }

  /** Tells the observer the run is over, once. */
  end(why: 'ended' | 'closed'): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#call(() => this.#observer.runEnd(this.#streamId, this.#runId, why));
  }

  /** Calls the observer; its failure is its own (logged), never the stream's. */
  #call(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.#log.error({ err }, 'package observer failed');
    }
  }
}

/**
 * Told of every change of every live window, after the window took it (the cluster's mirror into a shared
 * store). Calls are synchronous and must not block: copy what is needed and return. Unlike PackageObserver
 * it sees parts and state changes, and the release of a run's package.
 */
export interface WindowWatcher {
  changed(pkg: WatchedPackage, rendition: LiveRendition, change: WindowChange): void;
  /**
   * The package is gone from the packager: 'expired' after the ended run's retention, 'replaced' by a new
   * run of the same stream (told before the old one is closed), 'closed' at shutdown.
   */
  released(pkg: WatchedPackage, why: 'expired' | 'replaced' | 'closed'): void;
}
