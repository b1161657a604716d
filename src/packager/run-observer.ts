/**
 * The run observer: who is told of every stream run's life (the recorder), and the guard that keeps an
 * observer's failure its own; the window watcher, who is told of every change of a live window (the
 * cluster's mirror).
 */
import type { Logger } from '../core/index.js';
import type { CompletedSegment, LiveRendition } from './rendition.js';
import type { StreamPackage } from './stream-package.js';

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

/** What changed in a rendition's live window; `file` is the file the change produced (none for a gap or an end). */
export interface WindowChange {
  /**
   * 'added': the rendition joined its package; 'init', 'part', 'segment': a file (a segment also when it is a
   * gap, without a file); 'session-end' and 'end' answer the held playlist requests; 'close': server shutdown.
   */
  readonly kind: 'added' | 'init' | 'part' | 'segment' | 'session-end' | 'end' | 'close';
  readonly file?: { readonly name: string; readonly bytes: Uint8Array };
}

/**
 * Told of every change of every live window, after the window took it (the cluster's mirror into a shared
 * store). Calls are synchronous and must not block: copy what is needed and return. Unlike PackageObserver
 * it sees parts and state changes, and the release of a run's package.
 */
export interface WindowWatcher {
  changed(pkg: StreamPackage, rendition: LiveRendition, change: WindowChange): void;
  /**
   * The package is gone from the packager: 'expired' after the ended run's retention, 'replaced' by a new
   * run of the same stream (told before the old one is closed), 'closed' at shutdown.
   */
  released(pkg: StreamPackage, why: 'expired' | 'replaced' | 'closed'): void;
}
