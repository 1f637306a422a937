// Unit tests of how `nimbus ad` resolves its connection: flags > environment > config file,
// the password never from a flag, and clear errors for what is missing or wrong.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp-dirs.ts';
import { readAdConfigFile, resolveLdapConfig, type ResolveDeps } from './ldap-config.ts';

const deps = (over: Partial<ResolveDeps> = {}): ResolveDeps => ({
  env: {},
  readSecret: (p) => `secret-from:${p}`,
  prompt: () => Promise.reject(new Error('no terminal')),
  ...over,
});

describe('resolveLdapConfig', () => {
  it('flags win over the environment; the password comes from the file, then env, then the prompt', async () => {
    const env = { NIMBUS_AD_URL: 'ldap://env', NIMBUS_AD_BIND_DN: 'env@corp', NIMBUS_AD_PASSWORD: 'envpw' };
    const a = await resolveLdapConfig({ url: 'ldaps://flag:636', passwordFile: '/pw' }, deps({ env }));
    expect([a.url, a.bindDn, a.password()]).toEqual(['ldaps://flag:636', 'env@corp', 'secret-from:/pw']);
    const b = await resolveLdapConfig({}, deps({ env }));
    expect(b.password()).toBe('envpw');
    const c = await resolveLdapConfig({ url: 'ldap://x', bindDn: 'u@x' }, deps({ prompt: (q) => Promise.resolve(`typed for ${q}`) }));
    expect(c.password()).toBe('typed for Password for u@x: ');
    // The password never shows when the config is printed.
    expect(JSON.stringify(c)).not.toContain('typed');
  });

  it('explains what is missing or wrong', async () => {
    await expect(resolveLdapConfig({}, deps())).rejects.toThrow(/--url ldap:\/\/.*NIMBUS_AD_URL/);
    await expect(resolveLdapConfig({ url: 'http://x' }, deps())).rejects.toThrow(/not an LDAP URL/);
    await expect(resolveLdapConfig({ url: 'ldap://x' }, deps())).rejects.toThrow(/--bind-dn/);
    await expect(resolveLdapConfig({ url: 'ldaps://x', bindDn: 'u', starttls: true, passwordFile: '/p' }, deps())).rejects.toThrow(/already TLS/);
    await expect(resolveLdapConfig({ url: 'ldap://x', bindDn: 'u', passwordFile: '/p', timeout: 'soon' }, deps())).rejects.toThrow(/--timeout 'soon'/);
    await expect(resolveLdapConfig({ url: 'ldap://x', bindDn: 'u', passwordFile: '/p', caFile: '/nope.pem' }, deps())).rejects.toThrow(/CA file \/nope.pem does not exist/);
  });

  it('reads source: and target: from the agent config file, paths relative to it', async () => {
    const dir = tempDir('nimbus-adcfg-');
    const file = join(dir, 'nimbus.yaml');
    writeFileSync(file, 'source:\n  type: ad\n  url: ldap://dc1\n  bindDn: svc@corp\n  passwordFile: pw.txt\n  baseDn: DC=corp\n  starttls: true\ntarget:\n  url: http://127.0.0.1:8080\n  tenant: t\n  clientId: c\n  clientSecretFile: s.txt\n');
    const cfg = readAdConfigFile(file);
    expect(cfg.target?.clientSecretFile).toBe(join(dir, 's.txt'));
    const c = await resolveLdapConfig({}, deps({ config: cfg }));
    expect([c.url, c.bindDn, c.password(), c.starttls, c.baseDn]).toEqual(['ldap://dc1', 'svc@corp', `secret-from:${join(dir, 'pw.txt')}`, true, 'DC=corp']);
    writeFileSync(file, 'source:\n  type: ad\n  url: ldap://dc1\n  bogus: 1\n');
    expect(() => readAdConfigFile(file)).toThrow(/source\./);
  });
});
