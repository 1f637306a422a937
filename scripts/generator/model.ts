// Deterministic synthetic enterprise directory: users over an OU tree, departments,
// managers, nested/large/mail-enabled groups, and the edge cases sync must handle.
// Pure (no I/O): the same options always give the same model; writers turn it into
// Samba seed records, slapadd LDIF and an AD-flavoured LDIF export.
import { baseDnOf, escapeRdnValue } from '../lib/ldap.ts';
import { Rng } from './random.ts';

/**
 * Bump when the generated data changes in any way, so cached fixtures keyed by it are
 * rebuilt (the cache key also hashes the generator sources, as a safety net).
 */
export const GENERATOR_VERSION = 1;

export interface GeneratorOptions {
  /** Number of ordinary users (edge-case and service accounts come on top, about 30). */
  users: number;
  /** PRNG seed; default 1. */
  seed?: number;
  /** AD DNS domain; default corp.example.com (NetBIOS name CORP). */
  domainDnsName?: string;
  /** Routable UPN suffix the cloud tenant will verify; default contoso.com. */
  routableSuffix?: string;
  /** Non-routable UPN suffix; default corp.local. */
  nonRoutableSuffix?: string;
}

/** Edge cases the manifest names. Keep in step with docs/test-directories.md. */
export const EDGE_CASES = [
  'upn-domain-suffix',
  'upn-nonroutable-suffix',
  'upn-routable-suffix',
  'upn-duplicate',
  'upn-invalid-characters',
  'upn-matches-other-proxy-address',
  'mail-duplicate',
  'proxy-address-duplicate',
  'no-upn',
  'disabled',
  'critical-system-object',
  'conflict-name',
  'sync-service-account-name',
  'manager',
  'security-group',
  'mail-enabled-group',
  'nested-group',
  'large-group',
  'empty-group',
] as const;
export type EdgeCase = (typeof EDGE_CASES)[number];

export interface DirUser {
  kind: 'user';
  key: string;
  /** objectGUID (AD) / entryUUID (OpenLDAP), canonical text form. */
  guid: string;
  /** DN of the parent OU or container. */
  parent: string;
  cn: string;
  sAMAccountName: string;
  givenName?: string;
  sn?: string;
  displayName: string;
  userPrincipalName?: string;
  mail?: string;
  proxyAddresses: string[];
  department?: string;
  title?: string;
  employeeID?: string;
  telephoneNumber?: string;
  managerKey?: string;
  disabled: boolean;
  /** isCriticalSystemObject=TRUE (AD only; needs the relax control to set). */
  critical: boolean;
  edgeCases: EdgeCase[];
  /** Free text for the manifest: why this object is special. */
  note?: string;
}

export interface DirGroup {
  kind: 'group';
  key: string;
  guid: string;
  parent: string;
  cn: string;
  sAMAccountName: string;
  description: string;
  security: boolean;
  scope: 'global' | 'universal' | 'domainLocal';
  mail?: string;
  proxyAddresses: string[];
  /** Keys of member users and groups; member groups always come earlier in `groups`. */
  memberKeys: string[];
  edgeCases: EdgeCase[];
  note?: string;
}

export type DirObject = DirUser | DirGroup;

export interface DirectoryModel {
  generatorVersion: number;
  seed: number;
  users: number;
  domain: { dnsName: string; netbiosName: string; baseDN: string };
  routableSuffix: string;
  nonRoutableSuffix: string;
  /** Root OU everything generated lives under. */
  rootOU: string;
  /** OUs, parents before children. */
  ous: { dn: string; guid: string }[];
  /** Users, managers before their reports (a DN-valued link needs its target first). */
  userList: DirUser[];
  groupList: DirGroup[];
}

export const dnOf = (o: { cn: string; parent: string }): string => `CN=${escapeRdnValue(o.cn)},${o.parent}`;

const FIRST = [
  'James', 'Mary', 'John', 'Patricia', 'Robert', 'Jennifer', 'Michael', 'Linda', 'William', 'Elizabeth',
  'David', 'Barbara', 'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah', 'Charles', 'Karen',
  'Daniel', 'Nancy', 'Matthew', 'Lisa', 'Anthony', 'Betty', 'Mark', 'Margaret', 'Paul', 'Sandra',
  'Steven', 'Ashley', 'Andrew', 'Emily', 'Kenneth', 'Donna', 'Joshua', 'Michelle', 'Kevin', 'Carol',
  'Aiko', 'Hiroshi', 'Priya', 'Arjun', 'Chen', 'Mei', 'Olu', 'Amara', 'Lars', 'Ingrid',
  'Mateo', 'Lucia', 'Noah', 'Sofia', 'Omar', 'Layla', 'Ivan', 'Olga', 'Pierre', 'Camille',
];
const LAST = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez',
  'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin',
  'Lee', 'Perez', 'Thompson', 'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson',
  'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores',
  'Tanaka', 'Suzuki', 'Patel', 'Sharma', 'Wang', 'Li', 'Okafor', 'Adeyemi', 'Larsen', 'Berg',
  'Rossi', 'Dubois', 'Muller', 'Novak', 'Kowalski', 'Ivanova', 'Haddad', 'Silva', 'Costa', 'Kim',
];
const DEPARTMENTS = [
  'Engineering', 'Sales', 'Marketing', 'Finance', 'Human Resources', 'Legal',
  'Operations', 'Support', 'IT', 'Research', 'Procurement', 'Facilities',
];
const TITLES = ['Associate', 'Specialist', 'Senior Specialist', 'Analyst', 'Engineer', 'Consultant', 'Coordinator'];
const REGIONS: { name: string; sites: string[] }[] = [
  { name: 'Europe', sites: ['London', 'Paris', 'Berlin'] },
  { name: 'Americas', sites: ['New York', 'Toronto', 'Sao Paulo'] },
  { name: 'Asia Pacific', sites: ['Tokyo', 'Singapore', 'Sydney'] },
];

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '');

export function generateDirectory(options: GeneratorOptions): DirectoryModel {
  const seed = options.seed ?? 1;
  const n = Math.floor(options.users);
  if (!Number.isFinite(n) || n < 50) throw new Error(`generator: users must be a number >= 50 (got ${options.users}) so every edge case fits`);
  const dnsName = (options.domainDnsName ?? 'corp.example.com').toLowerCase();
  const routable = options.routableSuffix ?? 'contoso.com';
  const nonRoutable = options.nonRoutableSuffix ?? 'corp.local';
  const netbiosName = (dnsName.split('.')[0] ?? 'CORP').toUpperCase().slice(0, 15);
  const baseDN = baseDnOf(dnsName);
  const rng = new Rng(seed);

  const rootOU = `OU=Nimbus Corp,${baseDN}`;
  const ous: string[] = [rootOU];
  const siteUserOUs: string[] = [];
  const siteGroupOUs: string[] = [];
  for (const region of REGIONS) {
    const regionOU = `OU=${escapeRdnValue(region.name)},${rootOU}`;
    ous.push(regionOU);
    for (const site of region.sites) {
      const siteOU = `OU=${escapeRdnValue(site)},${regionOU}`;
      ous.push(siteOU, `OU=Users,${siteOU}`, `OU=Groups,${siteOU}`);
      siteUserOUs.push(`OU=Users,${siteOU}`);
      siteGroupOUs.push(`OU=Groups,${siteOU}`);
    }
  }
  const serviceOU = `OU=Service Accounts,${rootOU}`;
  const groupsOU = `OU=Groups,${rootOU}`;
  const disabledOU = `OU=Disabled Users,${rootOU}`;
  const conflictOU = `OU=Restored,${rootOU}`;
  ous.push(serviceOU, groupsOU, disabledOU, conflictOU);

  const samTaken = new Set<string>();
  const cnTaken = new Set<string>(); // parent + cn, case-insensitive, as AD compares RDNs
  const mailTaken = new Set<string>();
  // Next suffix to try per base name: keeps 100k users linear instead of rescanning suffixes.
  const nextSuffix = new Map<string, number>();
  const uniqueSam = (base: string): string => {
    const clean = base.replace(/[^a-z0-9.]/g, '').slice(0, 20) || 'user';
    let cand = clean;
    for (let i = nextSuffix.get(`s|${clean}`) ?? 2; samTaken.has(cand.toLowerCase()); i++) {
      cand = `${clean.slice(0, 20 - String(i).length)}${i}`;
      nextSuffix.set(`s|${clean}`, i + 1);
    }
    samTaken.add(cand.toLowerCase());
    return cand;
  };
  const uniqueCn = (parent: string, base: string): string => {
    let cand = base;
    for (let i = 2; cnTaken.has(`${cand}|${parent}`.toLowerCase()); i++) cand = `${base} (${i})`;
    cnTaken.add(`${cand}|${parent}`.toLowerCase());
    return cand;
  };
  const uniqueLocal = (base: string): string => {
    let cand = base;
    for (let i = nextSuffix.get(`m|${base}`) ?? 2; mailTaken.has(cand); i++) {
      cand = `${base}${i}`;
      nextSuffix.set(`m|${base}`, i + 1);
    }
    mailTaken.add(cand);
    return cand;
  };

  // Departments and their sizes: a few big ones, as in real companies.
  const deptCount = Math.min(DEPARTMENTS.length, Math.max(4, Math.floor(n / 150)));
  const depts = DEPARTMENTS.slice(0, deptCount);
  const deptWeights = depts.map((_, i) => 1 / (i + 1.5));
  const weightSum = deptWeights.reduce((a, b) => a + b, 0);
  const pickDept = (): number => {
    let r = rng.float() * weightSum;
    for (let i = 0; i < depts.length; i++) {
      r -= deptWeights[i] ?? 0;
      if (r <= 0) return i;
    }
    return depts.length - 1;
  };

  const users: DirUser[] = [];
  const byDept: DirUser[][] = depts.map(() => []);
  const pad = String(n).length;

  // Ordinary users. Generated per department so managers come before reports.
  const deptOf: number[] = [];
  for (let i = 0; i < n; i++) deptOf.push(i < depts.length ? i : pickDept());
  for (let i = 0; i < n; i++) {
    const d = deptOf[i] ?? 0;
    const dept = depts[d] as string;
    const given = rng.pick(FIRST);
    const sn = rng.pick(LAST);
    const parent = rng.pick(siteUserOUs);
    const sam = uniqueSam(`${given[0]}${sn}`.toLowerCase());
    const local = uniqueLocal(`${slug(given)}.${slug(sn)}`);
    const peers = byDept[d] as DirUser[];
    // A department's first user heads it; others report to someone earlier in it,
    // biased to the earliest so the tree has depth but also wide spans.
    const manager = peers.length === 0 ? undefined : peers[Math.floor(Math.pow(rng.float(), 2.5) * peers.length)];
    const u: DirUser = {
      kind: 'user',
      key: `u${String(i).padStart(pad, '0')}`,
      guid: rng.uuid(),
      parent,
      cn: uniqueCn(parent, `${given} ${sn}`),
      sAMAccountName: sam,
      givenName: given,
      sn,
      displayName: `${given} ${sn}`,
      userPrincipalName: `${sam}@${dnsName}`,
      mail: `${local}@${routable}`,
      proxyAddresses: [`SMTP:${local}@${routable}`, `smtp:${sam}@${dnsName}`],
      department: dept,
      title: peers.length === 0 ? `Head of ${dept}` : rng.pick(TITLES),
      employeeID: String(100000 + i),
      telephoneNumber: `+1 555 ${String(1000 + rng.int(9000))}`,
      managerKey: manager?.key,
      disabled: false,
      critical: false,
      edgeCases: manager ? ['manager'] : [],
    };
    peers.push(u);
    users.push(u);
  }

  // Distribute UPN suffixes: ~20% routable, ~5% non-routable, rest the AD domain.
  // Only users with index >= depts.length so department heads stay plain.
  for (const u of users) {
    const r = rng.float();
    const local = u.sAMAccountName;
    if (r < 0.2) {
      u.userPrincipalName = `${(u.mail ?? local).split('@')[0]}@${routable}`;
      u.edgeCases.push('upn-routable-suffix');
    } else if (r < 0.25) {
      u.userPrincipalName = `${local}@${nonRoutable}`;
      u.edgeCases.push('upn-nonroutable-suffix');
    } else {
      u.edgeCases.push('upn-domain-suffix');
    }
  }
  // A routable UPN built from the mail prefix can clash with another user's; keep them unique
  // here so the only duplicates are the deliberate ones below.
  const upnSeen = new Set<string>();
  for (const u of users) {
    if (!u.userPrincipalName) continue;
    const lower = u.userPrincipalName.toLowerCase();
    if (upnSeen.has(lower)) {
      u.userPrincipalName = `${u.sAMAccountName}@${dnsName}`;
      u.edgeCases = u.edgeCases.filter((e) => !e.startsWith('upn-')).concat('upn-domain-suffix');
    }
    upnSeen.add(u.userPrincipalName.toLowerCase());
  }

  // Deliberate edge cases on a shuffled set of ordinary (non-head) users.
  const pool = rng.shuffle(users.slice(depts.length));
  let next = 0;
  const take = (): DirUser => {
    const u = pool[next++];
    if (!u) throw new Error('generator: ran out of users for edge cases; raise users');
    return u;
  };
  const setCase = (u: DirUser, c: EdgeCase, note?: string) => {
    if (!u.edgeCases.includes(c)) u.edgeCases.push(c);
    if (note) u.note = u.note ? `${u.note}; ${note}` : note;
  };
  const dropUpnCases = (u: DirUser) => {
    u.edgeCases = u.edgeCases.filter((e) => !e.startsWith('upn-'));
  };

  // Users without a UPN (AD allows it; sync must fall back to sAMAccountName/mail).
  const noUpnCount = Math.max(3, Math.round(n * 0.005));
  for (let i = 0; i < noUpnCount; i++) {
    const u = take();
    dropUpnCases(u);
    delete u.userPrincipalName;
    setCase(u, 'no-upn');
  }

  // Duplicate UPNs: the second of each pair gets the first's UPN with different case,
  // which AD (and Samba) refuse; the loader records what really landed.
  for (let i = 0; i < 3; i++) {
    // `a` must be loaded first: had `b` taken a's UPN first, a's own UPN and even a's implied
    // UPN (sAMAccountName@domain, which Samba also checks) would clash.
    const [a, b] = [take(), take()].sort((x, y) => users.indexOf(x) - users.indexOf(y)) as [DirUser, DirUser];
    b.userPrincipalName = i === 0 ? a.userPrincipalName : a.userPrincipalName?.toUpperCase();
    dropUpnCases(b);
    b.edgeCases.push(...a.edgeCases.filter((e) => e.startsWith('upn-')));
    setCase(a, 'upn-duplicate', `shares its UPN with ${b.key}`);
    setCase(b, 'upn-duplicate', `shares its UPN with ${a.key}`);
  }

  // Invalid UPN characters (IdFix "character" errors). AD stores them as-is.
  const badLocals = ['john smith', "o'neil(ext)", 'ann,lee', 'jürgen.müller', 'bad&amp', 'trailing.', 'pipe|user', 'a%b'];
  for (const local of badLocals) {
    const u = take();
    dropUpnCases(u);
    u.userPrincipalName = `${local}@${dnsName}`;
    setCase(u, 'upn-invalid-characters');
    setCase(u, 'upn-domain-suffix');
  }

  // Duplicate mail across two users (AD does not enforce uniqueness of mail).
  for (let i = 0; i < 3; i++) {
    const a = take();
    const b = take();
    b.mail = a.mail;
    setCase(a, 'mail-duplicate', `shares mail with ${b.key}`);
    setCase(b, 'mail-duplicate', `shares mail with ${a.key}`);
  }

  // Duplicate smtp proxy address across two users (not enforced by AD either).
  for (let i = 0; i < 3; i++) {
    const a = take();
    const b = take();
    const shared = a.proxyAddresses.find((p) => p.startsWith('SMTP:'))?.slice(5) ?? `shared${i}@${routable}`;
    b.proxyAddresses = [...b.proxyAddresses, `smtp:${shared}`];
    setCase(a, 'proxy-address-duplicate', `smtp:${shared} also on ${b.key}`);
    setCase(b, 'proxy-address-duplicate', `smtp:${shared} also on ${a.key}`);
  }

  // A UPN equal to another user's proxy address: legal in AD, a conflict in the cloud
  // (UPN and proxy addresses share one namespace there).
  for (let i = 0; i < 2; i++) {
    const a = take();
    const b = take();
    const address = `${slug(a.givenName ?? 'x')}.alias${i}@${routable}`;
    dropUpnCases(a);
    a.userPrincipalName = address;
    setCase(a, 'upn-routable-suffix');
    b.proxyAddresses = [...b.proxyAddresses, `smtp:${address}`];
    setCase(a, 'upn-matches-other-proxy-address', `UPN is a proxy address of ${b.key}`);
    setCase(b, 'upn-matches-other-proxy-address', `holds ${a.key}'s UPN as a proxy address`);
  }

  // Disabled accounts: ~3%, some moved to the Disabled Users OU as admins do.
  const disabledCount = Math.max(5, Math.round(n * 0.03));
  for (let i = 0; i < disabledCount; i++) {
    const u = take();
    u.disabled = true;
    if (i % 2 === 0) {
      cnTaken.delete(`${u.cn}|${u.parent}`.toLowerCase());
      u.parent = disabledOU;
      u.cn = uniqueCn(disabledOU, u.displayName);
    }
    setCase(u, 'disabled');
  }

  let extra = 0;
  const extraUser = (partial: Partial<DirUser> & { cn: string; sAMAccountName: string; parent: string }): DirUser => {
    const u: DirUser = {
      kind: 'user',
      key: `x${String(extra++).padStart(2, '0')}`,
      guid: rng.uuid(),
      displayName: partial.cn,
      proxyAddresses: [],
      disabled: false,
      critical: false,
      edgeCases: [],
      ...partial,
    };
    samTaken.add(u.sAMAccountName.toLowerCase());
    users.push(u);
    return u;
  };

  // Replication-conflict objects as AD names them: "<name>\nCNF:<guid>", sAMAccountName
  // "$DUPLICATE-<hex>". Each shadows an existing user's name.
  for (let i = 0; i < 2; i++) {
    const twin = take();
    const u = extraUser({
      parent: twin.parent,
      cn: '',
      sAMAccountName: `$DUPLICATE-${(0x1f40 + i).toString(16)}`,
      givenName: twin.givenName,
      sn: twin.sn,
      displayName: twin.displayName,
      userPrincipalName: `cnf${i}.${twin.sAMAccountName}@${dnsName}`,
      edgeCases: ['conflict-name', 'upn-domain-suffix'],
      note: `replication conflict twin of ${twin.key}`,
    });
    u.cn = `${twin.cn}\nCNF:${u.guid}`;
  }

  // Accounts sync filters out by name (AD Connect: AAD_*, MSOL_*), plus the sync service
  // account the agent will bind as.
  for (const sam of ['MSOL_a1b2c3d4e5f6', 'AAD_0f1e2d3c4b5a']) {
    extraUser({
      parent: serviceOU,
      cn: sam,
      sAMAccountName: sam,
      userPrincipalName: `${sam}@${dnsName}`,
      edgeCases: ['sync-service-account-name', 'upn-domain-suffix'],
    });
  }
  extraUser({
    parent: serviceOU,
    cn: 'svc-critical-backup',
    sAMAccountName: 'svc-critbackup',
    userPrincipalName: `svc-critbackup@${dnsName}`,
    critical: true,
    edgeCases: ['critical-system-object', 'upn-domain-suffix'],
    note: 'generated with isCriticalSystemObject=TRUE',
  });
  extraUser({
    parent: serviceOU,
    cn: 'svc-nimbus-sync',
    sAMAccountName: 'svc-nimbus-sync',
    userPrincipalName: `svc-nimbus-sync@${dnsName}`,
    edgeCases: ['upn-domain-suffix'],
    note: 'service account for the sync agent; has the fixture password in Samba',
  });

  // Groups.
  const groups: DirGroup[] = [];
  let gi = 0;
  const addGroup = (g: Omit<DirGroup, 'kind' | 'key' | 'guid' | 'proxyAddresses' | 'edgeCases' | 'cn'> & { cn: string; proxyAddresses?: string[]; edgeCases?: EdgeCase[] }): DirGroup => {
    const group: DirGroup = {
      kind: 'group',
      key: `g${String(gi++).padStart(3, '0')}`,
      guid: rng.uuid(),
      proxyAddresses: [],
      edgeCases: [],
      ...g,
      cn: uniqueCn(g.parent, g.cn),
    };
    samTaken.add(group.sAMAccountName.toLowerCase());
    group.edgeCases.push(group.security ? 'security-group' : 'mail-enabled-group');
    if (group.security && group.mail) group.edgeCases.push('mail-enabled-group');
    if (group.memberKeys.length === 0) group.edgeCases.push('empty-group');
    if (group.memberKeys.length > 1500) group.edgeCases.push('large-group');
    if (group.memberKeys.some((k) => k.startsWith('g'))) group.edgeCases.push('nested-group');
    groups.push(group);
    return group;
  };
  const ordinary = users.filter((u) => u.key.startsWith('u'));
  const deptGroups: DirGroup[] = [];
  depts.forEach((dept, d) => {
    const members = (byDept[d] ?? []).map((u) => u.key);
    const s = slug(dept);
    deptGroups.push(
      addGroup({
        parent: siteGroupOUs[d % siteGroupOUs.length] as string,
        cn: `${dept} Staff`,
        sAMAccountName: uniqueSam(`sg-${s}`),
        description: `Everyone in ${dept}`,
        security: true,
        scope: 'global',
        memberKeys: members,
      }),
    );
    const local = uniqueLocal(`${s}-team`);
    addGroup({
      parent: siteGroupOUs[d % siteGroupOUs.length] as string,
      cn: `${dept} Team`,
      sAMAccountName: uniqueSam(`dl-${s}`),
      description: `Mailing list for ${dept}`,
      security: false,
      scope: 'universal',
      mail: `${local}@${routable}`,
      proxyAddresses: [`SMTP:${local}@${routable}`],
      memberKeys: members.filter(() => rng.chance(0.8)),
    });
  });
  const heads = deptGroups.map((g) => g.memberKeys[0]).filter((k): k is string => !!k);
  const managers = [...new Set(ordinary.map((u) => u.managerKey).filter((k): k is string => !!k))];
  const headsGroup = addGroup({
    parent: groupsOU,
    cn: 'Department Heads',
    sAMAccountName: uniqueSam('sg-dept-heads'),
    description: 'Heads of department',
    security: true,
    scope: 'global',
    memberKeys: heads,
  });
  const managersGroup = addGroup({
    parent: groupsOU,
    cn: 'Managers',
    sAMAccountName: uniqueSam('sg-managers'),
    description: 'Everyone with direct reports; nests Department Heads',
    security: true,
    scope: 'universal',
    memberKeys: [headsGroup.key, ...managers.filter((k) => !heads.includes(k))],
  });
  addGroup({
    parent: groupsOU,
    cn: 'Leadership',
    sAMAccountName: uniqueSam('ml-leadership'),
    description: 'Mail-enabled security group, three levels of nesting',
    security: true,
    scope: 'universal',
    mail: `leadership@${routable}`,
    proxyAddresses: [`SMTP:leadership@${routable}`, `smtp:leaders@${routable}`],
    memberKeys: [managersGroup.key],
  });
  addGroup({
    parent: groupsOU,
    cn: 'All Departments',
    sAMAccountName: uniqueSam('sg-all-departments'),
    description: 'Nests every department group',
    security: true,
    scope: 'universal',
    memberKeys: deptGroups.map((g) => g.key),
  });
  // Large groups: more than 1500 members (AD's default MaxValRange) forces ranged retrieval
  // of `member` (member;range=0-1499). Needs n >= 1501 to be large.
  addGroup({
    parent: groupsOU,
    cn: 'All Employees',
    sAMAccountName: uniqueSam('sg-all-employees'),
    description: 'Every ordinary user',
    security: true,
    scope: 'universal',
    memberKeys: ordinary.map((u) => u.key),
  });
  addGroup({
    parent: groupsOU,
    cn: 'Everyone Mail',
    sAMAccountName: uniqueSam('dl-everyone'),
    description: 'Distribution list of every enabled ordinary user',
    security: false,
    scope: 'universal',
    mail: `everyone@${routable}`,
    proxyAddresses: [`SMTP:everyone@${routable}`],
    memberKeys: ordinary.filter((u) => !u.disabled).map((u) => u.key),
  });
  addGroup({
    parent: groupsOU,
    cn: 'Project Phoenix',
    sAMAccountName: uniqueSam('sg-phoenix'),
    description: 'Empty group',
    security: true,
    scope: 'domainLocal',
    memberKeys: [],
  });
  // A group holding a proxy address a user also holds.
  const dupUser = users.find((u) => u.edgeCases.includes('proxy-address-duplicate'));
  const sharedAddr = dupUser?.proxyAddresses.find((p) => p.startsWith('SMTP:'))?.slice(5);
  if (dupUser && sharedAddr) {
    addGroup({
      parent: groupsOU,
      cn: 'Shared Mailbox Alias',
      sAMAccountName: uniqueSam('dl-shared-alias'),
      description: 'Distribution list that also claims a user proxy address',
      security: false,
      scope: 'universal',
      mail: `shared-alias@${routable}`,
      proxyAddresses: [`SMTP:shared-alias@${routable}`, `smtp:${sharedAddr}`],
      memberKeys: [dupUser.key],
      edgeCases: ['proxy-address-duplicate'],
      note: `smtp:${sharedAddr} also on ${dupUser.key}`,
    });
  }

  return {
    generatorVersion: GENERATOR_VERSION,
    seed,
    users: n,
    domain: { dnsName, netbiosName, baseDN },
    routableSuffix: routable,
    nonRoutableSuffix: nonRoutable,
    rootOU,
    ous: ous.map((dn) => ({ dn, guid: rng.uuid() })),
    userList: users,
    groupList: groups,
  };
}
