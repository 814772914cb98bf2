const src = (await import('node:fs')).readFileSync('bench/run.mjs', 'utf8').replace(/await main\(\);\s*$/, '').replace("const TOKEN = 'bench-token-0123456789';", "const TOKEN = 'test-3cx-token-456';");
(await import('node:fs')).writeFileSync('/work/main/bench/.fr.mjs', src + '\nawait fixedRate(18181, 1000, 2, 7000000); console.log(await fixedRate(18181, 1000, 6, 8000000));\n');
await import('/work/main/bench/.fr.mjs');
