import { copyFixture, sambaFixture, startSamba } from './samba/samba.ts';
const f = await sambaFixture({ users: 2000 });
const d = await copyFixture(f.dir);
const s = await startSamba(d);
console.log(s.pid, d);
