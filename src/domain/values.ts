// Value types shared by relay.yaml and adapter files: an IANA time zone and a country for phone
// numbers, validated where they are read.

import { isSupportedCountry } from 'libphonenumber-js';
import { IANAZone } from 'luxon';
import { z } from 'zod';

export const TimeZone = z.string().refine((v) => IANAZone.isValidZone(v), {
  message: 'expected an IANA time zone such as "Europe/Prague" or "UTC"',
});

export const Country = z
  .string()
  .transform((v) => v.toUpperCase())
  .refine((v) => isSupportedCountry(v), {
    message: 'expected a two-letter ISO 3166 country code such as "CZ"',
  });
