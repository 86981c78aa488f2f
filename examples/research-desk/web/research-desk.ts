// Generated from examples/research-desk/src/lib.rs by its tests; do not edit.
import type { UIMessage } from 'ai';

export type Source = { 
/**
 * The source's title, as the reader should see it.
 */
title: string, url: string, };

export type DeskMetadata = { 
/**
 * How many sources the reply cites.
 */
citedSources: number, };

export type ResearchDeskMessage = UIMessage<DeskMetadata, { source: Source }>;
