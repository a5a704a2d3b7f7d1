import type { IHeaders } from 'kafkajs';

/**
 * CloudEvents 1.0 in Kafka binary mode: the event's attributes travel as `ce_*` headers,
 * the data (the protobuf JSON of an events.proto message) is the record value, and the
 * record key is the appointment id.
 * https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/kafka-protocol-binding.md
 */
export interface CloudEvent {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly time: Date;
  readonly subject: string;
  readonly data: unknown;
}

export interface KafkaRecord {
  readonly key: string;
  readonly value: string;
  readonly headers: Record<string, string>;
}

export function toKafkaRecord(event: CloudEvent, key: string): KafkaRecord {
  return {
    key,
    value: JSON.stringify(event.data),
    headers: {
      ce_specversion: '1.0',
      ce_id: event.id,
      ce_source: event.source,
      ce_type: event.type,
      ce_time: event.time.toISOString(),
      ce_subject: event.subject,
      'content-type': 'application/json',
    },
  };
}

/** A consumed record's header as text (its first value when repeated), if it has it. */
export function headerValue(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}

/** The `ce_*` attributes of a consumed record, when its producer sent them. */
export function cloudEventAttributes(headers: IHeaders | undefined): {
  id?: string;
  type?: string;
  source?: string;
} {
  const get = (name: string) => headerValue(headers, name);
  return { id: get('ce_id'), type: get('ce_type'), source: get('ce_source') };
}
