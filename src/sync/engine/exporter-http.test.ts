// The HTTP exporter sends the same request body whether the engine hands it parsed attributes
// (export) or the stored JSON text (exportPrepared), against a local HTTP server that records it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../config.ts';
import { createHttpExporter } from './exporter-http.ts';
import type { SyncItem } from './exporter.ts';

let server: Server;
let url: string;
const bodies: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.url!.includes('/oauth2/')) return res.end(JSON.stringify({ access_token: 't', expires_in: 3600 }));
      bodies.push(body);
      const objects = (JSON.parse(body) as { objects: { sourceAnchor: string; type: string }[] }).objects;
      res.end(JSON.stringify({ results: objects.map((o) => ({ sourceAnchor: o.sourceAnchor, type: o.type, status: 'created' })) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => new Promise<void>((resolve) => server.close(() => resolve())));

describe('HTTP exporter', () => {
  it('sends stored JSON attributes as they are, the same body as parsed ones', async () => {
    const exporter = createHttpExporter({ url, tenant: 'contoso', clientId: 'c', clientSecret: new Secret('s', 'test') });
    const attributes = [
      { userPrincipalName: 'a@contoso.com', displayName: 'Zoë "Q" \\ O\'Neil', proxyAddresses: ['SMTP:a@contoso.com'], accountEnabled: false, manager: null },
      { displayName: 'Team', securityEnabled: true, members: ['AAECAwQFBgcICQoLDA0ODw=='] },
    ];
    const items: SyncItem[] = [
      { op: 'upsert', type: 'user', sourceAnchor: 'YWJjZA==', attributes: attributes[0]! },
      { op: 'upsert', type: 'group', sourceAnchor: 'ZWZnaA==', attributes: attributes[1]! },
    ];
    const parsed = await exporter.export(items);
    const prepared = await exporter.exportPrepared!(items.map((i, n) => ({ op: 'upsert', type: i.type, sourceAnchor: i.sourceAnchor, attributesJson: JSON.stringify(attributes[n]) })));
    expect(prepared).toEqual(parsed);
    expect(bodies).toHaveLength(2);
    expect(JSON.parse(bodies[1]!)).toEqual(JSON.parse(bodies[0]!));
    expect(bodies[1]).toBe(bodies[0]);
    // One request at a time: two on two connections may be applied in either order.
    expect(exporter.inFlight).toBe(1);
    await exporter.close();
  });
});
