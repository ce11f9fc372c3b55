/**
 * The local Firehose's S3 prefixes and object names against the examples of the Amazon Data Firehose
 * Developer Guide: "Custom Prefixes for Amazon S3 Objects" (the firehose namespace table, the semantic
 * rules, the example prefixes), "Dynamic partitioning" (partitioning keys with inline parsing, the S3
 * bucket prefix example) and "Configure Amazon S3 object name format".
 *
 * Where a row of the "Example prefixes" table disagrees with the semantic rules on the same page (its
 * instants vary between rows and the default suffix is shown without the hour), the rule decides and
 * the test says so.
 */
import { describe, expect, it } from '@jest/globals';
import { compileStream, validateCreateRequest } from '../../cloud/local/firehose/config.js';
import { objectKey } from '../../cloud/local/firehose/delivery.js';
import { FirehoseError, RecordProcessingError } from '../../cloud/local/firehose/errors.js';
import { compileMetadataQuery } from '../../cloud/local/firehose/jq.js';
import {
  type DestinationPrefixes,
  destinationPrefixes,
  evaluatePrefix,
  PROCESSING_FAILED,
} from '../../cloud/local/firehose/prefix.js';
import { CreateDeliveryStreamSchema, parseRequest } from '../../cloud/local/firehose/schemas.js';

const FIELD = 'ExtendedS3DestinationConfiguration';

function prefixes(prefix: string | undefined, errorOutputPrefix: string | undefined): DestinationPrefixes {
  return destinationPrefixes({ prefix, errorOutputPrefix, dynamicPartitioning: false, field: FIELD });
}

function evaluate(p: DestinationPrefixes, at: string): { data: string; error: string } {
  const arrivalMs = Date.parse(at);
  return {
    data: evaluatePrefix(p.data, { arrivalMs }),
    error: evaluatePrefix(p.error, { arrivalMs, errorOutputType: PROCESSING_FAILED }),
  };
}

/** The InvalidArgumentException message a configuration is refused with. */
function refusal(make: () => unknown): string {
  try {
    make();
  } catch (err) {
    expect(err).toBeInstanceOf(FirehoseError);
    expect((err as FirehoseError).code).toBe('InvalidArgumentException');
    return (err as FirehoseError).message;
  }
  throw new Error('the configuration was accepted');
}

describe('"Example prefixes" (Custom Prefixes for Amazon S3 Objects)', () => {
  it('Prefix myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/... evaluates to myPrefix/year=2018/month=07/day=06/hour=23/', () => {
    // Doc: Prefix `myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/`,
    // ErrorOutputPrefix `myErrorPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/!{firehose:error-output-type}`
    // → `myPrefix/year=2018/month=07/day=06/hour=23/` and
    //   `myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed`.
    const p = prefixes(
      'myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/',
      'myErrorPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/!{firehose:error-output-type}',
    );
    expect(evaluate(p, '2018-07-06T23:41:09.123Z')).toEqual({
      data: 'myPrefix/year=2018/month=07/day=06/hour=23/',
      error: 'myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed',
    });
  });

  it("takes text in single quotes literally: !{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}", () => {
    // Doc (an earlier revision of the same row): ErrorOutputPrefix
    // `myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/!{firehose:error-output-type}`
    // → `myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed`; and the rule "For the
    // timestamp namespace, any character that isn't in single quotes is evaluated".
    const p = prefixes(
      'myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/',
      "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/!{firehose:error-output-type}",
    );
    expect(evaluate(p, '2018-07-06T23:05:00Z').error).toBe(
      'myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed',
    );
  });

  it('Prefix unspecified, ErrorOutputPrefix myFirehoseFailures/!{firehose:error-output-type}/', () => {
    // Doc: Prefix unspecified, ErrorOutputPrefix `myFirehoseFailures/!{firehose:error-output-type}/`
    // → ErrorOutputPrefix `myFirehoseFailures/processing-failed/`; the Prefix is the default time prefix
    // (the rule: "Firehose appends the expression !{timestamp:yyyy/MM/dd/HH/}").
    const p = prefixes(undefined, 'myFirehoseFailures/!{firehose:error-output-type}/');
    expect(evaluate(p, '2018-08-27T10:30:00Z')).toEqual({
      data: '2018/08/27/10/',
      error: 'myFirehoseFailures/processing-failed/',
    });
  });

  it('Prefix !{timestamp:yyyy/MM/dd} without ErrorOutputPrefix is invalid input', () => {
    // Doc: Prefix `!{timestamp:yyyy/MM/dd}`, ErrorOutputPrefix unspecified → "Invalid input:
    // ErrorOutputPrefix can't be null when Prefix contains expressions".
    expect(refusal(() => prefixes('!{timestamp:yyyy/MM/dd}', undefined))).toBe(
      `${FIELD}.ErrorOutputPrefix can't be null when ${FIELD}.Prefix contains expressions`,
    );
  });

  it('Prefix myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}', () => {
    // Doc: Prefix `myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}`,
    // ErrorOutputPrefix `myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}`
    // → `myFirehose/DeliveredYear=2018/anyMonth/rand=5abf82daaa5` and
    //   `myFirehoseFailures/processing-failed/2018/anyMonth/10` (10 is the day: the arrival is Aug 10).
    const p = prefixes(
      'myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}',
      'myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}',
    );
    const out = evaluate(p, '2018-08-10T10:30:00Z');
    expect(out.data).toMatch(/^myFirehose\/DeliveredYear=2018\/anyMonth\/rand=[0-9a-f]{11}$/);
    expect(out.error).toBe('myFirehoseFailures/processing-failed/2018/anyMonth/10');
  });

  it('Prefix myFirehosePrefix/ without ErrorOutputPrefix gets the time prefix; failures get <prefix><error-output-type>/...', () => {
    // Doc: Prefix `myFirehosePrefix/`, ErrorOutputPrefix unspecified → `myFirehosePrefix/2018/08/27/` and
    // `myFirehosePrefix/processing-failed/2018/08/27/`. The rules on the same page decide the hour: "If
    // you specify a prefix that doesn't contain a timestamp namespace expression, Firehose appends the
    // expression !{timestamp:yyyy/MM/dd/HH/}", and with a null ErrorOutputPrefix failed records go to
    // "<specified-prefix><error-output-type>" followed by the same time prefix.
    const p = prefixes('myFirehosePrefix/', undefined);
    expect(evaluate(p, '2018-08-27T10:30:00Z')).toEqual({
      data: 'myFirehosePrefix/2018/08/27/10/',
      error: 'myFirehosePrefix/processing-failed/2018/08/27/10/',
    });
  });

  it('appends the default time prefix by concatenation, and none when the Prefix has a timestamp', () => {
    // Doc: "If you specify a prefix that doesn't contain a timestamp namespace expression, Firehose
    // appends the expression !{timestamp:yyyy/MM/dd/HH/} to the value in the Prefix field."
    const at = '2018-08-27T10:30:00Z';
    expect(evaluate(prefixes('legacy', undefined), at).data).toBe('legacy2018/08/27/10/');
    expect(evaluate(prefixes('', undefined), at).data).toBe('2018/08/27/10/');
    expect(
      evaluate(prefixes('logs/dt=!{timestamp:yyyy-MM-dd}/', 'err/!{firehose:error-output-type}/'), at).data,
    ).toBe('logs/dt=2018-08-27/');
  });
});

describe('the firehose namespace (Custom Prefixes for Amazon S3 Objects)', () => {
  it('error-output-type: myPrefix/result=!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}', () => {
    // Doc: example input `myPrefix/result=!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}` →
    // `myPrefix/result=processing-failed/2018/08/03`; "The error-output-type value can only be used in
    // the ErrorOutputPrefix field."
    const p = prefixes('ok/', 'myPrefix/result=!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}');
    expect(evaluate(p, '2018-08-03T12:00:00Z').error).toBe('myPrefix/result=processing-failed/2018/08/03');
    expect(refusal(() => prefixes('myPrefix/result=!{firehose:error-output-type}/', 'e/'))).toBe(
      `${FIELD}.Prefix can't contain !{firehose:error-output-type}`,
    );
  });

  it('random-string: 11 characters, a new string for every instance', () => {
    // Doc: example input `myPrefix/!{firehose:random-string}/` → `myPrefix/046b6c7f-0b/`; "Evaluates to a
    // random string of 11 characters. If you use it more than once in the same expression, every
    // instance evaluates to a new random string."
    const p = prefixes(
      'myPrefix/!{firehose:random-string}/!{firehose:random-string}/',
      'e/!{firehose:error-output-type}',
    );
    const data = evaluate(p, '2018-08-03T12:00:00Z').data;
    const m = /^myPrefix\/(.{11})\/(.{11})\/2018\/08\/03\/12\/$/.exec(data);
    expect(m).not.toBeNull();
    expect(m![1]).not.toBe(m![2]);
  });

  it('every timestamp instance of a prefix evaluates to the same instant', () => {
    // Doc: "If you use the timestamp namespace more than once in the same prefix expression, every
    // instance evaluates to the same instant in time."
    const p = prefixes(
      '!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/!{timestamp:mm}/!{timestamp:ss}/!{timestamp:SSS}/',
      'e/!{firehose:error-output-type}/',
    );
    expect(evaluate(p, '2018-12-31T23:59:59.999Z').data).toBe('2018/12/31/23/59/59/999/');
  });

  it('formats the common DateTimeFormatter letters', () => {
    const p = prefixes(
      "!{timestamp:yy-M-d H:m:s 'at' yyyy-MM-dd'T'HH:mm:ss.SSS DDD EEE MMM a hh Z}/",
      'e/!{firehose:error-output-type}/',
    );
    expect(evaluate(p, '2019-03-04T05:06:07.089Z').data).toBe(
      '19-3-4 5:6:7 at 2019-03-04T05:06:07.089 063 Mon Mar AM 05 +0000/',
    );
  });
});

describe('"Semantic rules" (Custom Prefixes for Amazon S3 Objects)', () => {
  it('the sequence !{ can only appear in !{namespace:value} expressions', () => {
    expect(refusal(() => prefixes('a/!{/b', 'e/'))).toMatch(
      /Prefix: '!\{' at position 2 does not start an expression/,
    );
    expect(refusal(() => prefixes('a/!{timestamp:yyyy', 'e/!{firehose:error-output-type}'))).toMatch(
      /Prefix: the expression at position 2 is not closed/,
    );
    expect(refusal(() => prefixes('a/!{time:yyyy}/', 'e/!{firehose:error-output-type}'))).toMatch(
      /Prefix: unknown expression namespace 'time'/,
    );
    expect(refusal(() => prefixes('a/!{firehose:uuid}/', 'e/!{firehose:error-output-type}'))).toMatch(
      /is not a firehose expression/,
    );
  });

  it('refuses timestamp patterns a Java DateTimeFormatter refuses', () => {
    expect(refusal(() => prefixes('!{timestamp:yyyy-bb}/', 'e/!{firehose:error-output-type}'))).toMatch(
      /Prefix: the timestamp pattern 'yyyy-bb' is not valid: unknown pattern letter: b/,
    );
    // An unclosed quote makes the rest of the prefix literal text, so the expression never closes.
    expect(refusal(() => prefixes("!{timestamp:yyyy'x}/", 'e/!{firehose:error-output-type}'))).toMatch(
      /the expression at position 0 is not closed with '\}'/,
    );
    expect(refusal(() => prefixes('!{timestamp:ddd}/', 'e/!{firehose:error-output-type}'))).toMatch(
      /too many pattern letters: d/,
    );
  });

  it('an ErrorOutputPrefix with expressions must include !{firehose:error-output-type}', () => {
    // Doc: "If you specify an expression for ErrorOutputPrefix, you must include at least one instance
    // of !{firehose:error-output-type}."
    expect(refusal(() => prefixes('p/!{timestamp:yyyy}/', 'e/!{timestamp:yyyy}/'))).toBe(
      `${FIELD}.ErrorOutputPrefix contains expressions, so it must include at least one !{firehose:error-output-type}`,
    );
  });

  it('an ErrorOutputPrefix without expressions is followed by the error output type and the time prefix', () => {
    const p = prefixes('data/', 'errors/');
    expect(evaluate(p, '2020-01-02T03:04:05Z').error).toBe('errors/processing-failed/2020/01/02/03/');
  });

  it("ErrorOutputPrefix can't contain partition key expressions", () => {
    expect(
      refusal(() =>
        destinationPrefixes({
          prefix: 'p/!{partitionKeyFromQuery:id}/',
          errorOutputPrefix: 'e/!{firehose:error-output-type}/!{partitionKeyFromQuery:id}/',
          dynamicPartitioning: true,
          queryKeys: ['id'],
          field: FIELD,
        }),
      ),
    ).toBe(
      `${FIELD}.ErrorOutputPrefix can't contain partitionKeyFromQuery or partitionKeyFromLambda expressions`,
    );
  });

  it('neither prefix can be longer than 512 characters after evaluation (1024 as configured)', () => {
    // Doc: "Neither Prefix nor ErrorOutputPrefix can be greater than 512 characters after they're evaluated."
    expect(refusal(() => prefixes(`${'a'.repeat(500)}/`, undefined))).toBe(
      `${FIELD}.Prefix evaluates to 515 characters; at most 512 are allowed`,
    );
    expect(refusal(() => prefixes('p/', `${'e'.repeat(510)}/!{firehose:error-output-type}`))).toMatch(
      /ErrorOutputPrefix evaluates to \d+ characters; at most 512 are allowed/,
    );
    expect(refusal(() => prefixes('x'.repeat(1025), undefined))).toBe(
      `${FIELD}.Prefix is 1025 characters long; at most 1024 are allowed`,
    );
  });
});

describe('"Dynamic partitioning": partitioning keys with inline parsing', () => {
  // Doc, "Creating partitioning keys with inline parsing": the sample data record (its `#epoch timestamp`
  // comment is not part of the JSON).
  const record = {
    type: { device: 'mobile', event: 'user_clicked_submit_button' },
    customer_id: '1234567890',
    event_timestamp: 1565382027,
    region: 'sample_region',
  };
  // Doc: the parameters and their jq expressions: customer_id `.customer_id`, device `.type.device`,
  // year `.event_timestamp| strftime("%Y")`, month `... strftime("%m")`, day `... strftime("%d")`,
  // hour `... strftime("%H")`.
  const query =
    '{customer_id: .customer_id, device: .type.device, year: .event_timestamp| strftime("%Y"), month: .event_timestamp| strftime("%m"), day: .event_timestamp| strftime("%d"), hour: .event_timestamp| strftime("%H")}';
  // Doc, "Amazon S3 Bucket Prefix for Dynamic Partitioning" (the example's line breaks removed).
  const prefix =
    'customer_id=!{partitionKeyFromQuery:customer_id}/device=!{partitionKeyFromQuery:device}/year=!{partitionKeyFromQuery:year}/month=!{partitionKeyFromQuery:month}/day=!{partitionKeyFromQuery:day}/hour=!{partitionKeyFromQuery:hour}/';

  it('delivers the example record under customer_id=1234567890/device=mobile/year=2019/month=08/day=09/hour=20/', () => {
    // Doc: "the record in this example is delivered to the following S3 object key:
    // s3://my-logs-prod/customer_id=1234567890/device=mobile/year=2019/month=08/day=09/hour=20/my-delivery-stream-2019-08-09-23-55-09-..."
    const q = compileMetadataQuery(query, 'MetadataExtractionQuery');
    expect(q.keys).toEqual(['customer_id', 'device', 'year', 'month', 'day', 'hour']);
    const keys = q.extract(Buffer.from(JSON.stringify(record)));
    const p = destinationPrefixes({
      prefix,
      errorOutputPrefix: 'errors/!{firehose:error-output-type}/',
      dynamicPartitioning: true,
      queryKeys: q.keys,
      field: FIELD,
    });
    // No time prefix is appended: the prefix is made of the partition keys.
    expect(
      evaluatePrefix(p.data, { arrivalMs: Date.parse('2019-08-09T23:55:09Z'), partitionKeys: keys }),
    ).toBe('customer_id=1234567890/device=mobile/year=2019/month=08/day=09/hour=20/');
  });

  it('fails records that are not JSON or lack a key (they go to the error output)', () => {
    const q = compileMetadataQuery('{customer_id: .customer_id, device: .type.device}', 'q');
    const fail = (data: string) => {
      try {
        q.extract(Buffer.from(data));
      } catch (err) {
        expect(err).toBeInstanceOf(RecordProcessingError);
        return `${(err as RecordProcessingError).code}: ${(err as Error).message}`;
      }
      throw new Error('extracted');
    };
    expect(fail('not json')).toBe('DynamicPartitioning.MetadataExtractionFailed: Non JSON record provided');
    expect(fail('{"type":{"device":"tv"}}')).toMatch(/partition key 'customer_id' evaluated to null/);
    expect(fail('{"customer_id":"1","type":"flat"}')).toMatch(/Cannot index string with "device"/);
    expect(q.extract(Buffer.from('{"customer_id":42,"type":{"device":"tv"}}\n'))).toEqual({
      customer_id: '42',
      device: 'tv',
    });
  });

  it('refuses queries outside the supported jq subset, and partitionKeyFromLambda', () => {
    expect(refusal(() => compileMetadataQuery('.customer_id', 'Q'))).toMatch(/not a supported jq query/);
    expect(refusal(() => compileMetadataQuery('{a: .x | ascii_downcase}', 'Q'))).toMatch(
      /unsupported function 'ascii_downcase'/,
    );
    expect(refusal(() => compileMetadataQuery('{a: .x | strftime("%G")}', 'Q'))).toMatch(
      /%G is not supported/,
    );
    expect(
      refusal(() =>
        destinationPrefixes({
          prefix: 'p/!{partitionKeyFromLambda:id}/',
          errorOutputPrefix: 'e/!{firehose:error-output-type}/',
          dynamicPartitioning: true,
          queryKeys: [],
          field: FIELD,
        }),
      ),
    ).toMatch(/partitionKeyFromLambda:id\} needs a Lambda processor/);
  });
});

describe('CreateDeliveryStream: dynamic partitioning and buffering rules', () => {
  const base = {
    DeliveryStreamName: 'dp',
    ExtendedS3DestinationConfiguration: {
      RoleARN: 'arn:aws:iam::123456789012:role/firehose',
      BucketARN: 'arn:aws:s3:::lake',
      Prefix: 'p/!{partitionKeyFromQuery:id}/',
      ErrorOutputPrefix: 'e/!{firehose:error-output-type}/',
      BufferingHints: { SizeInMBs: 64, IntervalInSeconds: 60 },
      DynamicPartitioningConfiguration: { Enabled: true },
      ProcessingConfiguration: {
        Enabled: true,
        Processors: [
          {
            Type: 'MetadataExtraction',
            Parameters: [
              { ParameterName: 'MetadataExtractionQuery', ParameterValue: '{id: .id}' },
              { ParameterName: 'JsonParsingEngine', ParameterValue: 'JQ-1.6' },
            ],
          },
        ],
      },
    },
  };
  const create = (patch: Record<string, unknown>) =>
    validateCreateRequest(
      parseRequest(CreateDeliveryStreamSchema, {
        ...base,
        ExtendedS3DestinationConfiguration: { ...base.ExtendedS3DestinationConfiguration, ...patch },
      }),
      { arn: 'arn:aws:firehose:us-east-1:123456789012:deliverystream/dp', now: 0 },
    );

  it('accepts the documented configuration', () => {
    expect(compileStream(create({})).query?.keys).toEqual(['id']);
  });

  it('needs at least 64 MiB of buffer, an interval and an error prefix with dynamic partitioning', () => {
    expect(refusal(() => create({ BufferingHints: { SizeInMBs: 5, IntervalInSeconds: 60 } }))).toBe(
      `${FIELD}.BufferingHints.SizeInMBs must be at least 64 when Dynamic Partitioning is enabled`,
    );
    expect(refusal(() => create({ BufferingHints: undefined }))).toMatch(
      /must be at least 64.*the default is 5/,
    );
    expect(refusal(() => create({ BufferingHints: { SizeInMBs: 64, IntervalInSeconds: 0 } }))).toMatch(
      /zero buffering is not available with dynamic partitioning/,
    );
    expect(refusal(() => create({ ErrorOutputPrefix: undefined }))).toBe(
      `${FIELD}.ErrorOutputPrefix is required when dynamic partitioning is enabled`,
    );
    expect(refusal(() => create({ Prefix: 'p/!{partitionKeyFromQuery:other}/' }))).toMatch(
      /names a key the MetadataExtractionQuery does not produce/,
    );
    expect(refusal(() => create({ BufferingHints: { SizeInMBs: 64 } }))).toMatch(
      /SizeInMBs and IntervalInSeconds must be specified together/,
    );
    expect(refusal(() => create({ BufferingHints: { SizeInMBs: 129, IntervalInSeconds: 60 } }))).toBe(
      `${FIELD}.BufferingHints.SizeInMBs: must be at most 128`,
    );
    expect(refusal(() => create({ BufferingHints: { SizeInMBs: 64, IntervalInSeconds: 901 } }))).toBe(
      `${FIELD}.BufferingHints.IntervalInSeconds: must be at most 900`,
    );
  });

  it('refuses partitionKeyFromQuery without dynamic partitioning', () => {
    expect(
      refusal(() =>
        create({ DynamicPartitioningConfiguration: { Enabled: false }, ProcessingConfiguration: undefined }),
      ),
    ).toMatch(/partitionKeyFromQuery:id\} requires dynamic partitioning/);
  });
});

describe('"Configure Amazon S3 object name format"', () => {
  it('names objects <evaluated prefix><stream name>-<stream version>-<year>-<month>-<day>-<hour>-<minute>-<second>-<uuid><file extension>', () => {
    // Doc: "S3 object key name follows the format <evaluated prefix><suffix>, where the suffix has the
    // format <Firehose stream name>-<Firehose stream version>-<year>-<month>-<day>-<hour>-<minute>-<second>-<uuid><file extension>"
    const stored = validateCreateRequest(
      parseRequest(CreateDeliveryStreamSchema, {
        DeliveryStreamName: 'my-delivery-stream',
        ExtendedS3DestinationConfiguration: {
          RoleARN: 'arn:aws:iam::123456789012:role/firehose',
          BucketARN: 'arn:aws:s3:::my-logs-prod',
          CompressionFormat: 'GZIP',
        },
      }),
      { arn: 'arn:aws:firehose:us-east-1:123456789012:deliverystream/my-delivery-stream', now: 0 },
    );
    const plan = compileStream(stored);
    const key = objectKey(plan, { kind: 'data', oldest: Date.parse('2019-08-09T23:55:09Z') });
    expect(key).toMatch(
      /^2019\/08\/09\/23\/my-delivery-stream-1-2019-08-09-23-55-09-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.gz$/,
    );
    // A configured FileExtension overrides the default extension.
    const custom = compileStream({
      ...stored,
      destination: { ...stored.destination, FileExtension: '.json.gz', CustomTimeZone: 'Asia/Tokyo' },
    });
    // In Asia/Tokyo (UTC+9) the prefix and the name use the local time.
    expect(objectKey(custom, { kind: 'data', oldest: Date.parse('2019-08-09T23:55:09Z') })).toMatch(
      /^2019\/08\/10\/08\/my-delivery-stream-1-2019-08-10-08-55-09-[0-9a-f-]{36}\.json\.gz$/,
    );
  });
});
