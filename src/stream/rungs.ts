/**
 * Transcoded rungs are published to a hub of their own under `<source stream id>/<rung name>`, so the
 * packager finds the source they belong to and nothing that lists streams mistakes them for streams.
 */
export function rungStreamId(streamId: string, rung: string): string {
  return `${streamId}/${rung}`;
}

export function parseRungStreamId(id: string): { streamId: string; rung: string } | undefined {
  const i = id.lastIndexOf('/');
  if (i <= 0 || i === id.length - 1) return undefined;
  return { streamId: id.slice(0, i), rung: id.slice(i + 1) };
}
