// autocannon's setupRequest on its worker thread (load.mjs): the next body of the bench's mix,
// from the call number the parent put in BENCH_OFFSET.

'use strict';

const { bodySource } = require('./mix.cjs');

const next = bodySource(Number(process.env.BENCH_OFFSET ?? 0));

module.exports = (req) => ({ ...req, body: next() });
