// Unit tests of the sync configuration: the issue's shape, env overrides, errors naming the
// file and field, secrets never printed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/temp-dirs.ts';
import { domainOfBaseDn, loadSyncConfig } from './config.ts';

function setup(yaml: string) {
  const dir = tempDir('nimbus-cfg-');
  writeFileSync(join(dir, 'ad.pw'), 'P@ssw0rd!\n');
  writeFileSync(join(dir, 'app.secret'), 's3cret-value\n');
  writeFileSync(join(dir, 'nimbus.yaml'), yaml);
  return dir;
}

const ISSUE_SHAPE = `
source: { type: ad, url: ldap://127.0.0.1:389, bindDn: Administrator@corp.example.com,
          passwordFile: ./ad.pw, baseDn: "DC=corp,DC=example,DC=com",
          include: ["OU=Sales,DC=corp,DC=example,DC=com"] }
target: { type: nimbus, url: http://127.0.0.1:8080, tenant: contoso,
          clientId: "abc", clientSecretFile: ./app.secret }
sync:   { interval: 60s, deletionThreshold: 500, staging: false }
`;

describe('sync config', () => {
  it('accepts the shape from issue 5, resolves paths beside the file and reads secrets', () => {
    const dir = setup(ISSUE_SHAPE);
    const c = loadSyncConfig({ cwd: dir, env: {} });
    expect(c.source).toMatchObject({ type: 'ad', url: 'ldap://127.0.0.1:389', include: ['OU=Sales,DC=corp,DC=example,DC=com'], exclude: [], passwordFile: join(dir, 'ad.pw') });
    expect(c.target).toMatchObject({ type: 'nimbus', tenant: 'contoso', batchSize: 5000 });
    expect(c.sync).toMatchObject({ interval: 60_000, deletionThreshold: 500, staging: false, dataDir: join(dir, '.nimbus-agent'), runRetention: 7 * 86_400_000 });
    expect(c.secrets.sourcePassword!.reveal()).toBe('P@ssw0rd!');
    expect(c.secrets.clientSecret!.reveal()).toBe('s3cret-value');
    // Secrets never print.
    const shown = `${JSON.stringify(c)} ${inspect(c, { depth: 5 })} ${String(c.secrets.clientSecret)}`;
    expect(shown).not.toContain('s3cret-value');
    expect(shown).not.toContain('P@ssw0rd!');
  });

  it('applies NIMBUS_* overrides, including NIMBUS_CONFIG and secrets from the environment', () => {
    const dir = setup(ISSUE_SHAPE);
    writeFileSync(join(dir, 'other.yaml'), ISSUE_SHAPE.replace('tenant: contoso', 'tenant: fabrikam'));
    const c = loadSyncConfig({
      cwd: dir,
      env: {
        NIMBUS_CONFIG: 'other.yaml',
        NIMBUS_SOURCE_INCLUDE: 'OU=A,DC=corp,DC=example,DC=com; OU=B,DC=corp,DC=example,DC=com',
        NIMBUS_SYNC_DELETION_THRESHOLD: '20',
        NIMBUS_SYNC_INTERVAL: '5m',
        NIMBUS_TARGET_CLIENT_SECRET: 'from-env',
        NIMBUS_MAPPING: '{"user":{"jobTitle":"title"}}',
        NIMBUS_SOURCE_READ_CONNECTIONS: '3',
      },
    });
    expect(c.source.readConnections).toBe(3);
    expect(c.target.tenant).toBe('fabrikam');
    expect(c.source.include).toEqual(['OU=A,DC=corp,DC=example,DC=com', 'OU=B,DC=corp,DC=example,DC=com']);
    expect(c.sync.deletionThreshold).toBe(20);
    expect(c.sync.interval).toBe(300_000);
    expect(c.secrets.clientSecret!.reveal()).toBe('from-env');
    expect(c.mapping.user).toEqual({ jobTitle: 'title' });
  });

  it('names the file, the field and what to do', () => {
    const dir = setup(ISSUE_SHAPE.replace('deletionThreshold: 500', 'deletionTreshold: 500'));
    expect(() => loadSyncConfig({ cwd: dir, env: {} })).toThrow(/nimbus\.yaml: invalid sync configuration:\n {2}sync: unknown setting\(s\) deletionTreshold/);
    const d2 = setup(ISSUE_SHAPE.replace('interval: 60s', 'interval: soon'));
    expect(() => loadSyncConfig({ cwd: d2, env: {} })).toThrow(/sync.interval: 'soon' is not a duration/);
    const d3 = setup('source: { type: ldif }\ntarget: { url: http://x, tenant: t, clientId: c, clientSecretFile: ./app.secret }\n');
    expect(() => loadSyncConfig({ cwd: d3, env: {} })).toThrow(/source.path: is required for source.type ldif/);
    const d4 = setup(ISSUE_SHAPE.replace('./app.secret', './missing.secret'));
    expect(() => loadSyncConfig({ cwd: d4, env: {} })).toThrow(/target.clientSecretFile: cannot read .*missing.secret \(ENOENT\)/);
    expect(() => loadSyncConfig({ cwd: dir, env: { NIMBUS_SOURCE_READ_CONNECTIONS: '20' } })).toThrow(/source.readConnections/);
    const d5 = setup('source: [unclosed');
    expect(() => loadSyncConfig({ cwd: d5, env: {} })).toThrow(/not valid YAML/);
    expect(() => loadSyncConfig({ cwd: d5, env: { NIMBUS_SYNC_DELETION_THRESHOLD: 'many' }, file: 'nope.yaml' })).toThrow(/No sync configuration at .*nope.yaml/);
  });

  it('accepts staging: true and a deletion threshold as a number or a percentage', () => {
    const dir = setup(ISSUE_SHAPE.replace('staging: false', 'staging: true').replace('deletionThreshold: 500', 'deletionThreshold: 5%'));
    expect(loadSyncConfig({ cwd: dir, env: {} }).sync).toMatchObject({ staging: true, deletionThreshold: '5%' });
    expect(loadSyncConfig({ cwd: dir, env: { NIMBUS_SYNC_DELETION_THRESHOLD: '2.5 %' } }).sync.deletionThreshold).toBe('2.5%');
    expect(loadSyncConfig({ cwd: dir, env: { NIMBUS_SYNC_DELETION_THRESHOLD: '0' } }).sync.deletionThreshold).toBe(0);
    expect(() => loadSyncConfig({ cwd: dir, env: { NIMBUS_SYNC_DELETION_THRESHOLD: '150%' } })).toThrow(/sync.deletionThreshold: '150%' is not a deletion threshold; write a number of objects \(500\) or a percentage/);
    expect(() => loadSyncConfig({ cwd: dir, env: { NIMBUS_SYNC_DELETION_THRESHOLD: 'many' } })).toThrow(/'many' is not a deletion threshold/);
  });

  it('derives the AD domain from the base DN', () => {
    expect(domainOfBaseDn('DC=corp,DC=example,DC=com')).toBe('corp.example.com');
    expect(domainOfBaseDn('OU=Sales, dc=Corp,dc=Example,dc=com')).toBe('corp.example.com');
    expect(domainOfBaseDn(undefined)).toBeUndefined();
  });
});
