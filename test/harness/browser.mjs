// A real headless Chromium for the console's browser tests and screenshots: the build npm
// installs (@sparticuz/chromium, unpacked to /tmp on first use), driven by puppeteer-core. Nothing
// is downloaded; the browser's own background traffic is switched off.

import chromium from '@sparticuz/chromium';
import puppeteer from 'puppeteer-core';

/**
 * Flags that would weaken what the tests check (same-origin rules, mixed content) are left out:
 * the console must hold with the browser's defaults.
 */
const WEAKENING = ['--disable-web-security', '--allow-running-insecure-content'];

/**
 * @param {{ width: number, height: number }} [viewport]
 * @returns {Promise<import('puppeteer-core').Browser>}
 */
export async function launchBrowser(viewport = { width: 1280, height: 900 }) {
  const executablePath = await chromium.executablePath();
  return puppeteer.launch({
    executablePath,
    headless: true,
    defaultViewport: viewport,
    args: [
      ...chromium.args.filter((a) => !WEAKENING.includes(a)),
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      // Recordings play without a click in tests.
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/**
 * A small WAV file (mono, 8 kHz, 16 bit, a 440 Hz tone) that a browser can play.
 * @param {number} [seconds]
 */
export function toneWav(seconds = 1) {
  const rate = 8000;
  const n = Math.round(rate * seconds);
  const wav = Buffer.alloc(44 + n * 2);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + n * 2, 4);
  wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(rate, 24);
  wav.writeUInt32LE(rate * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++)
    wav.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return wav;
}
