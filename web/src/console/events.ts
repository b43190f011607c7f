// A subscription of ordered events (jobEvents, serviceEvents): each (re)subscription asks for the events
// `after` the last seq applied, so a reconnection resumes there, and a seq already applied is dropped:
// no event is missed or shown twice.
import { useEffect, useRef, useState } from "react";
import { subscribe, type ApiError } from "./api";

export interface EventHandlers<E> {
  applied: (event: E) => void;
  error: (failure: ApiError) => void;
  complete: () => void;
}

/** The events of ``field`` in ``query`` so far; ``variables(after)`` names the subject, ``key`` identifies it. */
export function useEventsAfter<E extends { seq: number }>(
  query: string,
  field: string,
  key: string,
  variables: (after: number) => Record<string, unknown>,
  handlers: EventHandlers<E>,
): E[] {
  const [events, setEvents] = useState<E[]>([]);
  const lastSeq = useRef(0);
  const latest = useRef(handlers);
  latest.current = handlers;

  useEffect(() => {
    lastSeq.current = 0;
    setEvents([]);
    return subscribe<Record<string, E>>(query, () => variables(lastSeq.current), {
      next: (data) => {
        const event = data[field];
        if (!event || event.seq <= lastSeq.current) return;
        lastSeq.current = event.seq;
        setEvents((before) => [...before, event]);
        latest.current.applied(event);
      },
      error: (failure) => latest.current.error(failure),
      complete: () => latest.current.complete(),
    });
    // the variables follow from the key
  }, [query, field, key]);
  return events;
}
