/**
 * Transcoded rungs are published to a hub of their own, so that nothing that lists streams mistakes them
 * for streams. A rung is named by its source stream and its name in the ladder (`RungRef`); in that hub it
 * stands under one id made of both (`RungStreamId`, `<source stream id>/<rung name>`), from which the
 * packager learns the source a rung belongs to. The id is a branded string: a plain stream id is not one.
 */
export interface RungRef {
  readonly streamId: string;
  readonly rung: string;
}

export type RungStreamId = string & { readonly __rungStreamId: true };

export function rungStreamId(ref: RungRef): RungStreamId {
  return `${ref.streamId}/${ref.rung}` as RungStreamId;
}

/** The rung a rung hub id names; undefined for an id that is not one (no source or no rung name). */
export function parseRungStreamId(id: string): RungRef | undefined {
  const i = id.lastIndexOf('/');
  if (i <= 0 || i === id.length - 1) return undefined;
  return { streamId: id.slice(0, i), rung: id.slice(i + 1) };
}
