import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config/index.js';
import { SERVER_NODE_FLAGS } from '../../harness/server-process.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const configuration = readFileSync(new URL('../../docs/CONFIGURATION.md', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
const benchmarks = readFileSync(new URL('../../docs/BENCHMARKS.md', import.meta.url), 'utf8');

describe('the docs stay in step with the code', () => {
  it('docs/CONFIGURATION.md documents every setting with its default', () => {
    for (const s of SETTINGS) {
      const row = configuration.split('\n').find((l) => l.startsWith(`| \`${s.env}\` |`));
      expect(row, `docs/CONFIGURATION.md has no row for ${s.env}`).toBeDefined();
      if ('default' in s) expect(row).toContain(`\`${String(s.default)}\``);
    }
  });

  it('docs/BENCHMARKS.md lists every bench and soak script, with a section for each load bench', () => {
    const benches = Object.keys(pkg.scripts).filter((n) => n.startsWith('bench:') || n === 'soak');
    expect(benches.length).toBeGreaterThan(3);
    for (const name of benches) expect(benchmarks, `docs/BENCHMARKS.md does not mention npm run ${name}`).toContain(`npm run ${name}`);
    for (const name of ['soak', 'bench:density', 'bench:fanout', 'bench:peers'])
      expect(benchmarks, `docs/BENCHMARKS.md lacks npm run ${name}`).toContain(`npm run ${name}`);
  });

  it('npm start runs scripts/start.sh, whose default node flags are the ones benches compare against', () => {
    expect(pkg.scripts.start).toBe('sh scripts/start.sh');
    const script = readFileSync(new URL('../../scripts/start.sh', import.meta.url), 'utf8');
    expect(script).toContain(`exec node \${NODE_FLAGS-${SERVER_NODE_FLAGS.join(' ')}} --import tsx src/main.ts`);
  });

  it('the README shows the two quick-start commands', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm test');
  });
});
