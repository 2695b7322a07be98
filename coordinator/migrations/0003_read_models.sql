ALTER TABLE `services` ADD `updated_at` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `services_updated` ON `services` (`updated_at`);--> statement-breakpoint
ALTER TABLE `topology_edges` ADD `updated_at` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `topology_edges_updated` ON `topology_edges` (`updated_at`);--> statement-breakpoint
CREATE INDEX `batches_received_at` ON `batches` (`received_at`);