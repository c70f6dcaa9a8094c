import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { adminCommand, listeningBanner } from './banner.js';

describe('adminCommand', () => {
  test('npm start in a checkout: the script, from where npm start was typed', () => {
    assert.equal(adminCommand({ script: '/src/postern/bin/postern.js', cwd: '/src/postern' }), 'node bin/postern.js');
    assert.equal(adminCommand({ script: '/src/postern/bin/postern.js', cwd: '/src/postern/docs' }), 'node /src/postern/bin/postern.js');
  });

  test('installed on the PATH: postern', () => {
    assert.equal(adminCommand({ script: '/usr/local/bin/postern', cwd: '/root' }), 'postern');
  });

  test('node with a script: the same script, relative to where it was started when it is inside', () => {
    assert.equal(adminCommand({ script: '/src/postern/bin/postern.js', cwd: '/src/postern' }), 'node bin/postern.js');
    assert.equal(adminCommand({ script: '/opt/postern/bin/postern.js', cwd: '/root' }), 'node /opt/postern/bin/postern.js');
  });

  test('the --config serve was given, quoted for the shell when it needs to be', () => {
    assert.equal(
      adminCommand({ script: '/usr/bin/postern', cwd: '/', configPath: '/etc/postern/postern.toml' }),
      'postern --config /etc/postern/postern.toml',
    );
    assert.equal(adminCommand({ script: '/usr/bin/postern', cwd: '/', configPath: "my dir/it's.toml" }), `postern --config 'my dir/it'\\''s.toml'`);
  });
});

test('listeningBanner names every listener and the next commands', () => {
  const text = listeningBanner(
    [
      { kind: 'mx', address: '127.0.0.1', port: 2525 },
      { kind: 'submission', address: '::1', port: 2587 },
    ],
    { script: '/r/bin/postern.js', cwd: '/r' },
  );
  assert.match(text, /^Postern is listening: mx 127\.0\.0\.1:2525, submission \[::1\]:2587\n/);
  assert.match(text, /\nNext: node bin\/postern\.js domain add example\.test && echo secret \| node bin\/postern\.js user add alice@example\.test --password-stdin\n/);
});
