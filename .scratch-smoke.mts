import { startService } from './test/helpers/service.ts';
const svc = await startService({ env: { ADMIN_TOKEN: 'admin-token-0123456789', RATE_LIMIT_PER_MINUTE: '5' } });
try {
  const doc = await (await svc.call('/docs/json')).json() as any;
  console.log(Object.keys(doc.paths));
  console.log(JSON.stringify(doc.paths['/v1/media/{id}'].get.responses['404']).slice(0, 300));
  console.log(JSON.stringify(doc.paths['/v1/media'].post.requestBody).slice(0, 400));
  const ui = await svc.call('/docs'); console.log('docs', ui.status, ui.headers.get('content-type'), ui.url);
  const ui2 = await svc.call('/docs/'); console.log('docs/', ui2.status, ui2.headers.get('content-type'));
  const m = await svc.call('/metrics'); console.log('metrics noauth', m.status, m.headers.get('www-authenticate'), await m.text());
  const m2 = await svc.call('/metrics', { headers: { authorization: 'Bearer admin-token-0123456789' } }); console.log('metrics', m2.status, (await m2.text()).split('\n').filter(l => l.includes('queue_depth')).slice(0,4));
  const a = await svc.call('/admin/queues'); console.log('admin noauth', a.status, a.headers.get('www-authenticate'), await a.text());
  const a2 = await svc.call('/admin/queues/api/queues', { headers: { authorization: 'Basic ' + Buffer.from('x:admin-token-0123456789').toString('base64') } }); console.log('admin api', a2.status, (await a2.text()).slice(0, 300));
  const a3 = await svc.call('/admin/queues', { headers: { authorization: 'Bearer admin-token-0123456789' } }); console.log('admin ui', a3.status, (await a3.text()).slice(0, 200));
  const app = await svc.newApp();
  for (let i = 0; i < 7; i++) { const r = await svc.call('/v1/media', { key: app.apiKey }); console.log(r.status, r.headers.get('retry-after'), r.status === 429 ? await r.text() : ''); }
} finally { await svc.stop(); }
