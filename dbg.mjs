import { ThreadedSqliteStore } from './dist/store/sqlite/threaded.js';
const t = setTimeout(() => { console.log('timeout'); process.exit(2); }, 3000);
try { await ThreadedSqliteStore.open({ path: '/proc/nope/relay.db' }); console.log('opened?!'); } catch (e) { console.log('rejected:', e.message); }
clearTimeout(t);
