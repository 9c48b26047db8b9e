"""tenant-tight references: every reference between tenant tables goes through the tenant; user, role, custom
stage and integration references checked against the row's tenant by triggers

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 19:55:00

A foreign-key check ignores row-level security, so before this a sub-account could point its rows at another
sub-account's templates, campaigns, users and contacts (models/tenant_refs.py says how the keys are built). The
lists below are that module's result at this revision, written out so this migration never changes with later
models. Existing rows that already point across tenants make the upgrade fail, naming the key: such rows must be
repaired by hand, never silently cleared.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, unique constraint, columns): the referenced side of composite keys
UNIQUES =  [('ai_agents', 'uq_ai_agents_sub_account_id_id', ['sub_account_id', 'id']),
 ('ai_conversation_logs', 'uq_ai_conversation_logs_sub_account_id_id', ['sub_account_id', 'id']),
 ('appointments', 'uq_appointments_sub_account_id_id', ['sub_account_id', 'id']),
 ('calendar_types', 'uq_calendar_types_sub_account_id_id', ['sub_account_id', 'id']),
 ('calendars', 'uq_calendars_sub_account_id_id', ['sub_account_id', 'id']),
 ('campaigns', 'uq_campaigns_agency_id_id', ['agency_id', 'id']),
 ('campaigns', 'uq_campaigns_sub_account_id_id', ['sub_account_id', 'id']),
 ('channels', 'uq_channels_sub_account_id_id', ['sub_account_id', 'id']),
 ('contacts', 'uq_contacts_sub_account_id_id', ['sub_account_id', 'id']),
 ('conversations', 'uq_conversations_sub_account_id_id', ['sub_account_id', 'id']),
 ('custom_stages', 'uq_custom_stages_agency_id_id', ['agency_id', 'id']),
 ('email_templates', 'uq_email_templates_sub_account_id_id', ['sub_account_id', 'id']),
 ('financial_records', 'uq_financial_records_agency_id_id', ['agency_id', 'id']),
 ('forms', 'uq_forms_sub_account_id_id', ['sub_account_id', 'id']),
 ('funnels', 'uq_funnels_sub_account_id_id', ['sub_account_id', 'id']),
 ('integrations', 'uq_integrations_agency_id_id', ['agency_id', 'id']),
 ('invoices', 'uq_invoices_sub_account_id_id', ['sub_account_id', 'id']),
 ('knowledge_bases', 'uq_knowledge_bases_sub_account_id_id', ['sub_account_id', 'id']),
 ('knowledge_sources', 'uq_knowledge_sources_sub_account_id_id', ['sub_account_id', 'id']),
 ('message_campaign_recipients', 'uq_message_campaign_recipients_sub_account_id_id', ['sub_account_id', 'id']),
 ('message_campaigns', 'uq_message_campaigns_sub_account_id_id', ['sub_account_id', 'id']),
 ('messages', 'uq_messages_sub_account_id_id', ['sub_account_id', 'id']),
 ('opportunities', 'uq_opportunities_sub_account_id_id', ['sub_account_id', 'id']),
 ('pages', 'uq_pages_sub_account_id_id', ['sub_account_id', 'id']),
 ('payment_methods', 'uq_payment_methods_sub_account_id_id', ['sub_account_id', 'id']),
 ('performance_metrics', 'uq_performance_metrics_agency_id_id', ['agency_id', 'id']),
 ('pipeline_stages', 'uq_pipeline_stages_sub_account_id_id', ['sub_account_id', 'id']),
 ('pipelines', 'uq_pipelines_sub_account_id_id', ['sub_account_id', 'id']),
 ('prices', 'uq_prices_sub_account_id_id', ['sub_account_id', 'id']),
 ('products', 'uq_products_sub_account_id_id', ['sub_account_id', 'id']),
 ('report_templates', 'uq_report_templates_agency_id_id', ['agency_id', 'id']),
 ('sales_calls', 'uq_sales_calls_sub_account_id_id', ['sub_account_id', 'id']),
 ('services', 'uq_services_sub_account_id_id', ['sub_account_id', 'id']),
 ('sms_templates', 'uq_sms_templates_sub_account_id_id', ['sub_account_id', 'id']),
 ('subscriptions', 'uq_subscriptions_sub_account_id_id', ['sub_account_id', 'id']),
 ('surveys', 'uq_surveys_sub_account_id_id', ['sub_account_id', 'id']),
 ('tags', 'uq_tags_sub_account_id_id', ['sub_account_id', 'id']),
 ('transactions', 'uq_transactions_sub_account_id_id', ['sub_account_id', 'id']),
 ('users', 'uq_users_agency_id_id', ['agency_id', 'id']),
 ('webhooks', 'uq_webhooks_sub_account_id_id', ['sub_account_id', 'id']),
 ('workflow_actions', 'uq_workflow_actions_sub_account_id_id', ['sub_account_id', 'id']),
 ('workflow_executions', 'uq_workflow_executions_sub_account_id_id', ['sub_account_id', 'id']),
 ('workflows', 'uq_workflows_sub_account_id_id', ['sub_account_id', 'id'])]
# single-column tenant indexes the unique ones above make redundant
DROPPED_INDEXES =  [('ai_agents', 'ix_ai_agents_sub_account_id', ['sub_account_id']),
 ('ai_conversation_logs', 'ix_ai_conversation_logs_sub_account_id', ['sub_account_id']),
 ('appointments', 'ix_appointments_sub_account_id', ['sub_account_id']),
 ('calendar_types', 'ix_calendar_types_sub_account_id', ['sub_account_id']),
 ('calendars', 'ix_calendars_sub_account_id', ['sub_account_id']),
 ('campaigns', 'ix_campaigns_agency_id', ['agency_id']),
 ('campaigns', 'ix_campaigns_sub_account_id', ['sub_account_id']),
 ('channels', 'ix_channels_sub_account_id', ['sub_account_id']),
 ('contacts', 'ix_contacts_sub_account_id', ['sub_account_id']),
 ('custom_stages', 'ix_custom_stages_agency_id', ['agency_id']),
 ('email_templates', 'ix_email_templates_sub_account_id', ['sub_account_id']),
 ('financial_records', 'ix_financial_records_agency_id', ['agency_id']),
 ('forms', 'ix_forms_sub_account_id', ['sub_account_id']),
 ('funnels', 'ix_funnels_sub_account_id', ['sub_account_id']),
 ('integrations', 'ix_integrations_agency_id', ['agency_id']),
 ('invoices', 'ix_invoices_sub_account_id', ['sub_account_id']),
 ('knowledge_bases', 'ix_knowledge_bases_sub_account_id', ['sub_account_id']),
 ('knowledge_sources', 'ix_knowledge_sources_sub_account_id', ['sub_account_id']),
 ('message_campaign_recipients', 'ix_message_campaign_recipients_sub_account_id', ['sub_account_id']),
 ('message_campaigns', 'ix_message_campaigns_sub_account_id', ['sub_account_id']),
 ('messages', 'ix_messages_sub_account_id', ['sub_account_id']),
 ('opportunities', 'ix_opportunities_sub_account_id', ['sub_account_id']),
 ('pages', 'ix_pages_sub_account_id', ['sub_account_id']),
 ('payment_methods', 'ix_payment_methods_sub_account_id', ['sub_account_id']),
 ('performance_metrics', 'ix_performance_metrics_agency_id', ['agency_id']),
 ('pipeline_stages', 'ix_pipeline_stages_sub_account_id', ['sub_account_id']),
 ('pipelines', 'ix_pipelines_sub_account_id', ['sub_account_id']),
 ('prices', 'ix_prices_sub_account_id', ['sub_account_id']),
 ('products', 'ix_products_sub_account_id', ['sub_account_id']),
 ('report_templates', 'ix_report_templates_agency_id', ['agency_id']),
 ('sales_calls', 'ix_sales_calls_sub_account_id', ['sub_account_id']),
 ('services', 'ix_services_sub_account_id', ['sub_account_id']),
 ('sms_templates', 'ix_sms_templates_sub_account_id', ['sub_account_id']),
 ('subscriptions', 'ix_subscriptions_sub_account_id', ['sub_account_id']),
 ('surveys', 'ix_surveys_sub_account_id', ['sub_account_id']), ('tags', 'ix_tags_sub_account_id', ['sub_account_id']),
 ('transactions', 'ix_transactions_sub_account_id', ['sub_account_id']),
 ('users', 'ix_users_agency_id', ['agency_id']), ('webhooks', 'ix_webhooks_sub_account_id', ['sub_account_id']),
 ('workflow_actions', 'ix_workflow_actions_sub_account_id', ['sub_account_id']),
 ('workflow_executions', 'ix_workflow_executions_sub_account_id', ['sub_account_id']),
 ('workflows', 'ix_workflows_sub_account_id', ['sub_account_id'])]
# (table, name, columns, referenced table, referenced columns, on delete): before -> after
OLD_KEYS =  [('agency_stages', 'fk_agency_stages_custom_stage_id_custom_stages', ['custom_stage_id'], 'custom_stages', ['id'],
  'CASCADE'),
 ('ai_conversation_logs', 'fk_ai_conversation_logs_ai_agent_id_ai_agents', ['ai_agent_id'], 'ai_agents', ['id'],
  'SET NULL'),
 ('ai_conversation_logs', 'fk_ai_conversation_logs_conversation_id_conversations', ['conversation_id'],
  'conversations', ['id'], 'SET NULL'),
 ('ai_conversation_logs', 'fk_ai_conversation_logs_message_id_messages', ['message_id'], 'messages', ['id'],
  'SET NULL'),
 ('analytics_events', 'fk_analytics_events_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'SET NULL'),
 ('api_keys', 'fk_api_keys_user_id_users', ['user_id'], 'users', ['id'], 'CASCADE'),
 ('appointments', 'fk_appointments_calendar_id_calendars', ['calendar_id'], 'calendars', ['id'], 'CASCADE'),
 ('appointments', 'fk_appointments_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('appointments', 'fk_appointments_rescheduled_from_id_appointments', ['rescheduled_from_id'], 'appointments', ['id'],
  'SET NULL'),
 ('appointments', 'fk_appointments_service_id_services', ['service_id'], 'services', ['id'], 'SET NULL'),
 ('availability_rules', 'fk_availability_rules_calendar_id_calendars', ['calendar_id'], 'calendars', ['id'],
  'CASCADE'),
 ('campaign_calls', 'fk_campaign_calls_campaign_id_campaigns', ['campaign_id'], 'campaigns', ['id'], 'CASCADE'),
 ('campaign_calls', 'fk_campaign_calls_sales_call_id_sales_calls', ['sales_call_id'], 'sales_calls', ['id'],
  'CASCADE'),
 ('contact_tags', 'fk_contact_tags_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('contact_tags', 'fk_contact_tags_tag_id_tags', ['tag_id'], 'tags', ['id'], 'CASCADE'),
 ('contacts', 'fk_contacts_assigned_user_id_users', ['assigned_user_id'], 'users', ['id'], 'SET NULL'),
 ('contacts', 'fk_contacts_campaign_id_campaigns', ['campaign_id'], 'campaigns', ['id'], 'SET NULL'),
 ('contacts', 'fk_contacts_converted_client_id_sub_accounts', ['converted_client_id'], 'sub_accounts', ['id'],
  'SET NULL'),
 ('conversation_ai_configs', 'fk_conversation_ai_configs_ai_agent_id_ai_agents', ['ai_agent_id'], 'ai_agents', ['id'],
  'SET NULL'),
 ('conversation_ai_configs', 'fk_conversation_ai_configs_conversation_id_conversations', ['conversation_id'],
  'conversations', ['id'], 'CASCADE'),
 ('conversations', 'fk_conversations_channel_id_channels', ['channel_id'], 'channels', ['id'], 'CASCADE'),
 ('conversations', 'fk_conversations_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('email_clicks', 'fk_email_clicks_recipient_id_message_campaign_recipients', ['recipient_id'],
  'message_campaign_recipients', ['id'], 'CASCADE'),
 ('financial_records', 'fk_financial_records_campaign_id_campaigns', ['campaign_id'], 'campaigns', ['id'],
  'SET NULL'),
 ('financial_records', 'fk_financial_records_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'SET NULL'),
 ('financial_records', 'fk_financial_records_integration_source_id_integrations', ['integration_source_id'],
  'integrations', ['id'], 'SET NULL'),
 ('financial_records', 'fk_financial_records_transaction_id_transactions', ['transaction_id'], 'transactions', ['id'],
  'SET NULL'),
 ('form_submissions', 'fk_form_submissions_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'SET NULL'),
 ('form_submissions', 'fk_form_submissions_form_id_forms', ['form_id'], 'forms', ['id'], 'CASCADE'),
 ('forms', 'fk_forms_page_id_pages', ['page_id'], 'pages', ['id'], 'SET NULL'),
 ('handoffs', 'fk_handoffs_ai_agent_id_ai_agents', ['ai_agent_id'], 'ai_agents', ['id'], 'SET NULL'),
 ('handoffs', 'fk_handoffs_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('handoffs', 'fk_handoffs_conversation_id_conversations', ['conversation_id'], 'conversations', ['id'], 'CASCADE'),
 ('invoice_line_items', 'fk_invoice_line_items_invoice_id_invoices', ['invoice_id'], 'invoices', ['id'], 'CASCADE'),
 ('invoice_line_items', 'fk_invoice_line_items_price_id_prices', ['price_id'], 'prices', ['id'], 'SET NULL'),
 ('invoice_line_items', 'fk_invoice_line_items_product_id_products', ['product_id'], 'products', ['id'], 'SET NULL'),
 ('invoices', 'fk_invoices_contact_id_contacts', ['contact_id'], 'contacts', ['id'], None),
 ('invoices', 'fk_invoices_subscription_id_subscriptions', ['subscription_id'], 'subscriptions', ['id'], 'SET NULL'),
 ('knowledge_bases', 'fk_knowledge_bases_ai_agent_id_ai_agents', ['ai_agent_id'], 'ai_agents', ['id'], 'SET NULL'),
 ('knowledge_sources', 'fk_knowledge_sources_knowledge_base_id_knowledge_bases', ['knowledge_base_id'],
  'knowledge_bases', ['id'], 'CASCADE'),
 ('message_campaign_recipients', 'fk_message_campaign_recipients_contact_id_contacts', ['contact_id'], 'contacts',
  ['id'], 'CASCADE'),
 ('message_campaign_recipients', 'fk_message_campaign_recipients_message_campaign_id_mess_d7ac',
  ['message_campaign_id'], 'message_campaigns', ['id'], 'CASCADE'),
 ('message_campaign_recipients', 'fk_message_campaign_recipients_message_id_messages', ['message_id'], 'messages',
  ['id'], 'SET NULL'),
 ('message_campaigns', 'fk_message_campaigns_email_template_id_email_templates', ['email_template_id'],
  'email_templates', ['id'], 'SET NULL'),
 ('message_campaigns', 'fk_message_campaigns_sms_template_id_sms_templates', ['sms_template_id'], 'sms_templates',
  ['id'], 'SET NULL'),
 ('messages', 'fk_messages_channel_id_channels', ['channel_id'], 'channels', ['id'], 'CASCADE'),
 ('messages', 'fk_messages_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('messages', 'fk_messages_conversation_id_conversations', ['conversation_id'], 'conversations', ['id'], 'CASCADE'),
 ('notes', 'fk_notes_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('opportunities', 'fk_opportunities_campaign_id_campaigns', ['campaign_id'], 'campaigns', ['id'], 'SET NULL'),
 ('opportunities', 'fk_opportunities_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('opportunities', 'fk_opportunities_pipeline_id_pipelines', ['pipeline_id'], 'pipelines', ['id'], 'CASCADE'),
 ('opportunities', 'fk_opportunities_stage_id_pipeline_stages', ['stage_id'], 'pipeline_stages', ['id'], 'RESTRICT'),
 ('opportunity_stage_history', 'fk_opportunity_stage_history_from_stage_id_pipeline_stages', ['from_stage_id'],
  'pipeline_stages', ['id'], 'SET NULL'),
 ('opportunity_stage_history', 'fk_opportunity_stage_history_opportunity_id_opportunities', ['opportunity_id'],
  'opportunities', ['id'], 'CASCADE'),
 ('opportunity_stage_history', 'fk_opportunity_stage_history_to_stage_id_pipeline_stages', ['to_stage_id'],
  'pipeline_stages', ['id'], 'SET NULL'),
 ('pages', 'fk_pages_funnel_id_funnels', ['funnel_id'], 'funnels', ['id'], 'CASCADE'),
 ('payment_methods', 'fk_payment_methods_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('performance_metrics', 'fk_performance_metrics_campaign_id_campaigns', ['campaign_id'], 'campaigns', ['id'],
  'CASCADE'),
 ('pipeline_stages', 'fk_pipeline_stages_pipeline_id_pipelines', ['pipeline_id'], 'pipelines', ['id'], 'CASCADE'),
 ('prices', 'fk_prices_product_id_products', ['product_id'], 'products', ['id'], 'CASCADE'),
 ('report_templates', 'fk_report_templates_created_by_user_id_users', ['created_by_user_id'], 'users', ['id'],
  'SET NULL'),
 ('sales_calls', 'fk_sales_calls_appointment_id_appointments', ['appointment_id'], 'appointments', ['id'],
  'SET NULL'),
 ('sales_calls', 'fk_sales_calls_campaign_id_campaigns', ['campaign_id'], 'campaigns', ['id'], 'SET NULL'),
 ('sales_calls', 'fk_sales_calls_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'SET NULL'),
 ('services', 'fk_services_calendar_type_id_calendar_types', ['calendar_type_id'], 'calendar_types', ['id'],
  'SET NULL'),
 ('services', 'fk_services_product_id_products', ['product_id'], 'products', ['id'], 'SET NULL'),
 ('subscriptions', 'fk_subscriptions_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('subscriptions', 'fk_subscriptions_payment_method_id_payment_methods', ['payment_method_id'], 'payment_methods',
  ['id'], 'SET NULL'),
 ('subscriptions', 'fk_subscriptions_price_id_prices', ['price_id'], 'prices', ['id'], 'RESTRICT'),
 ('subscriptions', 'fk_subscriptions_product_id_products', ['product_id'], 'products', ['id'], 'RESTRICT'),
 ('survey_responses', 'fk_survey_responses_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'SET NULL'),
 ('survey_responses', 'fk_survey_responses_survey_id_surveys', ['survey_id'], 'surveys', ['id'], 'CASCADE'),
 ('surveys', 'fk_surveys_page_id_pages', ['page_id'], 'pages', ['id'], 'SET NULL'),
 ('tasks', 'fk_tasks_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('template_financials', 'fk_template_financials_financial_record_id_financial_records', ['financial_record_id'],
  'financial_records', ['id'], 'CASCADE'),
 ('template_financials', 'fk_template_financials_report_template_id_report_templates', ['report_template_id'],
  'report_templates', ['id'], 'CASCADE'),
 ('template_metrics', 'fk_template_metrics_performance_metric_id_performance_metrics', ['performance_metric_id'],
  'performance_metrics', ['id'], 'CASCADE'),
 ('template_metrics', 'fk_template_metrics_report_template_id_report_templates', ['report_template_id'],
  'report_templates', ['id'], 'CASCADE'),
 ('training_data', 'fk_training_data_knowledge_base_id_knowledge_bases', ['knowledge_base_id'], 'knowledge_bases',
  ['id'], 'CASCADE'),
 ('training_data', 'fk_training_data_source_id_knowledge_sources', ['source_id'], 'knowledge_sources', ['id'],
  'CASCADE'),
 ('training_data', 'fk_training_data_source_log_id_ai_conversation_logs', ['source_log_id'], 'ai_conversation_logs',
  ['id'], 'SET NULL'),
 ('transactions', 'fk_transactions_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'SET NULL'),
 ('transactions', 'fk_transactions_invoice_id_invoices', ['invoice_id'], 'invoices', ['id'], 'SET NULL'),
 ('transactions', 'fk_transactions_payment_method_id_payment_methods', ['payment_method_id'], 'payment_methods',
  ['id'], 'SET NULL'),
 ('transactions', 'fk_transactions_subscription_id_subscriptions', ['subscription_id'], 'subscriptions', ['id'],
  'SET NULL'),
 ('user_agency_memberships', 'fk_user_agency_memberships_user_id_users', ['user_id'], 'users', ['id'], 'CASCADE'),
 ('user_feedback', 'fk_user_feedback_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'SET NULL'),
 ('user_feedback', 'fk_user_feedback_sales_call_id_sales_calls', ['sales_call_id'], 'sales_calls', ['id'],
  'SET NULL'),
 ('webhook_logs', 'fk_webhook_logs_webhook_id_webhooks', ['webhook_id'], 'webhooks', ['id'], 'CASCADE'),
 ('workflow_action_executions', 'fk_workflow_action_executions_workflow_action_id_workfl_5daf',
  ['workflow_action_id'], 'workflow_actions', ['id'], 'SET NULL'),
 ('workflow_action_executions', 'fk_workflow_action_executions_workflow_execution_id_wor_6196',
  ['workflow_execution_id'], 'workflow_executions', ['id'], 'CASCADE'),
 ('workflow_actions', 'fk_workflow_actions_parent_action_id_workflow_actions', ['parent_action_id'],
  'workflow_actions', ['id'], 'CASCADE'),
 ('workflow_actions', 'fk_workflow_actions_workflow_id_workflows', ['workflow_id'], 'workflows', ['id'], 'CASCADE'),
 ('workflow_executions', 'fk_workflow_executions_contact_id_contacts', ['contact_id'], 'contacts', ['id'], 'CASCADE'),
 ('workflow_executions', 'fk_workflow_executions_current_action_id_workflow_actions', ['current_action_id'],
  'workflow_actions', ['id'], 'SET NULL'),
 ('workflow_executions', 'fk_workflow_executions_workflow_id_workflows', ['workflow_id'], 'workflows', ['id'],
  'CASCADE'),
 ('workflow_triggers', 'fk_workflow_triggers_workflow_id_workflows', ['workflow_id'], 'workflows', ['id'], 'CASCADE')]
NEW_KEYS =  [('agency_stages', 'fk_agency_stages_custom_stage_id_custom_stages', ['agency_id', 'custom_stage_id'],
  'custom_stages', ['agency_id', 'id'], 'CASCADE'),
 ('ai_conversation_logs', 'fk_ai_conversation_logs_ai_agent_id_ai_agents', ['sub_account_id', 'ai_agent_id'],
  'ai_agents', ['sub_account_id', 'id'], 'SET NULL (ai_agent_id)'),
 ('ai_conversation_logs', 'fk_ai_conversation_logs_conversation_id_conversations',
  ['sub_account_id', 'conversation_id'], 'conversations', ['sub_account_id', 'id'], 'SET NULL (conversation_id)'),
 ('ai_conversation_logs', 'fk_ai_conversation_logs_message_id_messages', ['sub_account_id', 'message_id'], 'messages',
  ['sub_account_id', 'id'], 'SET NULL (message_id)'),
 ('analytics_events', 'fk_analytics_events_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'SET NULL (contact_id)'),
 ('api_keys', 'fk_api_keys_user_id_users', ['agency_id', 'user_id'], 'users', ['agency_id', 'id'], 'CASCADE'),
 ('appointments', 'fk_appointments_calendar_id_calendars', ['sub_account_id', 'calendar_id'], 'calendars',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('appointments', 'fk_appointments_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('appointments', 'fk_appointments_rescheduled_from_id_appointments', ['sub_account_id', 'rescheduled_from_id'],
  'appointments', ['sub_account_id', 'id'], 'SET NULL (rescheduled_from_id)'),
 ('appointments', 'fk_appointments_service_id_services', ['sub_account_id', 'service_id'], 'services',
  ['sub_account_id', 'id'], 'SET NULL (service_id)'),
 ('availability_rules', 'fk_availability_rules_calendar_id_calendars', ['sub_account_id', 'calendar_id'], 'calendars',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('campaign_calls', 'fk_campaign_calls_campaign_id_campaigns', ['sub_account_id', 'campaign_id'], 'campaigns',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('campaign_calls', 'fk_campaign_calls_sales_call_id_sales_calls', ['sub_account_id', 'sales_call_id'], 'sales_calls',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('contact_tags', 'fk_contact_tags_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('contact_tags', 'fk_contact_tags_tag_id_tags', ['sub_account_id', 'tag_id'], 'tags', ['sub_account_id', 'id'],
  'CASCADE'),
 ('contacts', 'fk_contacts_assigned_user_id_users', ['agency_id', 'assigned_user_id'], 'users', ['agency_id', 'id'],
  'SET NULL (assigned_user_id)'),
 ('contacts', 'fk_contacts_campaign_id_campaigns', ['sub_account_id', 'campaign_id'], 'campaigns',
  ['sub_account_id', 'id'], 'SET NULL (campaign_id)'),
 ('contacts', 'fk_contacts_converted_client_id_sub_accounts', ['agency_id', 'converted_client_id'], 'sub_accounts',
  ['agency_id', 'id'], 'SET NULL (converted_client_id)'),
 ('conversation_ai_configs', 'fk_conversation_ai_configs_ai_agent_id_ai_agents', ['sub_account_id', 'ai_agent_id'],
  'ai_agents', ['sub_account_id', 'id'], 'SET NULL (ai_agent_id)'),
 ('conversation_ai_configs', 'fk_conversation_ai_configs_conversation_id_conversations',
  ['sub_account_id', 'conversation_id'], 'conversations', ['sub_account_id', 'id'], 'CASCADE'),
 ('conversations', 'fk_conversations_channel_id_channels', ['sub_account_id', 'channel_id'], 'channels',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('conversations', 'fk_conversations_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('email_clicks', 'fk_email_clicks_recipient_id_message_campaign_recipients', ['sub_account_id', 'recipient_id'],
  'message_campaign_recipients', ['sub_account_id', 'id'], 'CASCADE'),
 ('financial_records', 'fk_financial_records_campaign_id_campaigns', ['sub_account_id', 'campaign_id'], 'campaigns',
  ['sub_account_id', 'id'], 'SET NULL (campaign_id)'),
 ('financial_records', 'fk_financial_records_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'SET NULL (contact_id)'),
 ('financial_records', 'fk_financial_records_integration_source_id_integrations',
  ['agency_id', 'integration_source_id'], 'integrations', ['agency_id', 'id'], 'SET NULL (integration_source_id)'),
 ('financial_records', 'fk_financial_records_transaction_id_transactions', ['sub_account_id', 'transaction_id'],
  'transactions', ['sub_account_id', 'id'], 'SET NULL (transaction_id)'),
 ('form_submissions', 'fk_form_submissions_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'SET NULL (contact_id)'),
 ('form_submissions', 'fk_form_submissions_form_id_forms', ['sub_account_id', 'form_id'], 'forms',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('forms', 'fk_forms_page_id_pages', ['sub_account_id', 'page_id'], 'pages', ['sub_account_id', 'id'],
  'SET NULL (page_id)'),
 ('handoffs', 'fk_handoffs_ai_agent_id_ai_agents', ['sub_account_id', 'ai_agent_id'], 'ai_agents',
  ['sub_account_id', 'id'], 'SET NULL (ai_agent_id)'),
 ('handoffs', 'fk_handoffs_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('handoffs', 'fk_handoffs_conversation_id_conversations', ['sub_account_id', 'conversation_id'], 'conversations',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('invoice_line_items', 'fk_invoice_line_items_invoice_id_invoices', ['sub_account_id', 'invoice_id'], 'invoices',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('invoice_line_items', 'fk_invoice_line_items_price_id_prices', ['sub_account_id', 'price_id'], 'prices',
  ['sub_account_id', 'id'], 'SET NULL (price_id)'),
 ('invoice_line_items', 'fk_invoice_line_items_product_id_products', ['sub_account_id', 'product_id'], 'products',
  ['sub_account_id', 'id'], 'SET NULL (product_id)'),
 ('invoices', 'fk_invoices_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], None),
 ('invoices', 'fk_invoices_subscription_id_subscriptions', ['sub_account_id', 'subscription_id'], 'subscriptions',
  ['sub_account_id', 'id'], 'SET NULL (subscription_id)'),
 ('knowledge_bases', 'fk_knowledge_bases_ai_agent_id_ai_agents', ['sub_account_id', 'ai_agent_id'], 'ai_agents',
  ['sub_account_id', 'id'], 'SET NULL (ai_agent_id)'),
 ('knowledge_sources', 'fk_knowledge_sources_knowledge_base_id_knowledge_bases',
  ['sub_account_id', 'knowledge_base_id'], 'knowledge_bases', ['sub_account_id', 'id'], 'CASCADE'),
 ('message_campaign_recipients', 'fk_message_campaign_recipients_contact_id_contacts',
  ['sub_account_id', 'contact_id'], 'contacts', ['sub_account_id', 'id'], 'CASCADE'),
 ('message_campaign_recipients', 'fk_message_campaign_recipients_message_campaign_id_message_campaigns',
  ['sub_account_id', 'message_campaign_id'], 'message_campaigns', ['sub_account_id', 'id'], 'CASCADE'),
 ('message_campaign_recipients', 'fk_message_campaign_recipients_message_id_messages',
  ['sub_account_id', 'message_id'], 'messages', ['sub_account_id', 'id'], 'SET NULL (message_id)'),
 ('message_campaigns', 'fk_message_campaigns_email_template_id_email_templates',
  ['sub_account_id', 'email_template_id'], 'email_templates', ['sub_account_id', 'id'],
  'SET NULL (email_template_id)'),
 ('message_campaigns', 'fk_message_campaigns_sms_template_id_sms_templates', ['sub_account_id', 'sms_template_id'],
  'sms_templates', ['sub_account_id', 'id'], 'SET NULL (sms_template_id)'),
 ('messages', 'fk_messages_channel_id_channels', ['sub_account_id', 'channel_id'], 'channels',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('messages', 'fk_messages_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('messages', 'fk_messages_conversation_id_conversations', ['sub_account_id', 'conversation_id'], 'conversations',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('notes', 'fk_notes_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts', ['sub_account_id', 'id'],
  'CASCADE'),
 ('opportunities', 'fk_opportunities_campaign_id_campaigns', ['sub_account_id', 'campaign_id'], 'campaigns',
  ['sub_account_id', 'id'], 'SET NULL (campaign_id)'),
 ('opportunities', 'fk_opportunities_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('opportunities', 'fk_opportunities_pipeline_id_pipelines', ['sub_account_id', 'pipeline_id'], 'pipelines',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('opportunities', 'fk_opportunities_stage_id_pipeline_stages', ['sub_account_id', 'stage_id'], 'pipeline_stages',
  ['sub_account_id', 'id'], 'RESTRICT'),
 ('opportunity_stage_history', 'fk_opportunity_stage_history_from_stage_id_pipeline_stages',
  ['sub_account_id', 'from_stage_id'], 'pipeline_stages', ['sub_account_id', 'id'], 'SET NULL (from_stage_id)'),
 ('opportunity_stage_history', 'fk_opportunity_stage_history_opportunity_id_opportunities',
  ['sub_account_id', 'opportunity_id'], 'opportunities', ['sub_account_id', 'id'], 'CASCADE'),
 ('opportunity_stage_history', 'fk_opportunity_stage_history_to_stage_id_pipeline_stages',
  ['sub_account_id', 'to_stage_id'], 'pipeline_stages', ['sub_account_id', 'id'], 'SET NULL (to_stage_id)'),
 ('pages', 'fk_pages_funnel_id_funnels', ['sub_account_id', 'funnel_id'], 'funnels', ['sub_account_id', 'id'],
  'CASCADE'),
 ('payment_methods', 'fk_payment_methods_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('performance_metrics', 'fk_performance_metrics_campaign_id_campaigns', ['agency_id', 'campaign_id'], 'campaigns',
  ['agency_id', 'id'], 'CASCADE'),
 ('performance_metrics', 'fk_performance_metrics_campaign_id_campaigns_sub_account',
  ['sub_account_id', 'campaign_id'], 'campaigns', ['sub_account_id', 'id'], 'CASCADE'),
 ('pipeline_stages', 'fk_pipeline_stages_pipeline_id_pipelines', ['sub_account_id', 'pipeline_id'], 'pipelines',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('prices', 'fk_prices_product_id_products', ['sub_account_id', 'product_id'], 'products', ['sub_account_id', 'id'],
  'CASCADE'),
 ('report_templates', 'fk_report_templates_created_by_user_id_users', ['agency_id', 'created_by_user_id'], 'users',
  ['agency_id', 'id'], 'SET NULL (created_by_user_id)'),
 ('sales_calls', 'fk_sales_calls_appointment_id_appointments', ['sub_account_id', 'appointment_id'], 'appointments',
  ['sub_account_id', 'id'], 'SET NULL (appointment_id)'),
 ('sales_calls', 'fk_sales_calls_campaign_id_campaigns', ['sub_account_id', 'campaign_id'], 'campaigns',
  ['sub_account_id', 'id'], 'SET NULL (campaign_id)'),
 ('sales_calls', 'fk_sales_calls_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'SET NULL (contact_id)'),
 ('services', 'fk_services_calendar_type_id_calendar_types', ['sub_account_id', 'calendar_type_id'], 'calendar_types',
  ['sub_account_id', 'id'], 'SET NULL (calendar_type_id)'),
 ('services', 'fk_services_product_id_products', ['sub_account_id', 'product_id'], 'products',
  ['sub_account_id', 'id'], 'SET NULL (product_id)'),
 ('subscriptions', 'fk_subscriptions_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('subscriptions', 'fk_subscriptions_payment_method_id_payment_methods', ['sub_account_id', 'payment_method_id'],
  'payment_methods', ['sub_account_id', 'id'], 'SET NULL (payment_method_id)'),
 ('subscriptions', 'fk_subscriptions_price_id_prices', ['sub_account_id', 'price_id'], 'prices',
  ['sub_account_id', 'id'], 'RESTRICT'),
 ('subscriptions', 'fk_subscriptions_product_id_products', ['sub_account_id', 'product_id'], 'products',
  ['sub_account_id', 'id'], 'RESTRICT'),
 ('survey_responses', 'fk_survey_responses_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'SET NULL (contact_id)'),
 ('survey_responses', 'fk_survey_responses_survey_id_surveys', ['sub_account_id', 'survey_id'], 'surveys',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('surveys', 'fk_surveys_page_id_pages', ['sub_account_id', 'page_id'], 'pages', ['sub_account_id', 'id'],
  'SET NULL (page_id)'),
 ('tasks', 'fk_tasks_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts', ['sub_account_id', 'id'],
  'CASCADE'),
 ('template_financials', 'fk_template_financials_financial_record_id_financial_records',
  ['agency_id', 'financial_record_id'], 'financial_records', ['agency_id', 'id'], 'CASCADE'),
 ('template_financials', 'fk_template_financials_report_template_id_report_templates',
  ['agency_id', 'report_template_id'], 'report_templates', ['agency_id', 'id'], 'CASCADE'),
 ('template_metrics', 'fk_template_metrics_performance_metric_id_performance_metrics',
  ['agency_id', 'performance_metric_id'], 'performance_metrics', ['agency_id', 'id'], 'CASCADE'),
 ('template_metrics', 'fk_template_metrics_report_template_id_report_templates', ['agency_id', 'report_template_id'],
  'report_templates', ['agency_id', 'id'], 'CASCADE'),
 ('training_data', 'fk_training_data_knowledge_base_id_knowledge_bases', ['sub_account_id', 'knowledge_base_id'],
  'knowledge_bases', ['sub_account_id', 'id'], 'CASCADE'),
 ('training_data', 'fk_training_data_source_id_knowledge_sources', ['sub_account_id', 'source_id'],
  'knowledge_sources', ['sub_account_id', 'id'], 'CASCADE'),
 ('training_data', 'fk_training_data_source_log_id_ai_conversation_logs', ['sub_account_id', 'source_log_id'],
  'ai_conversation_logs', ['sub_account_id', 'id'], 'SET NULL (source_log_id)'),
 ('transactions', 'fk_transactions_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'SET NULL (contact_id)'),
 ('transactions', 'fk_transactions_invoice_id_invoices', ['sub_account_id', 'invoice_id'], 'invoices',
  ['sub_account_id', 'id'], 'SET NULL (invoice_id)'),
 ('transactions', 'fk_transactions_payment_method_id_payment_methods', ['sub_account_id', 'payment_method_id'],
  'payment_methods', ['sub_account_id', 'id'], 'SET NULL (payment_method_id)'),
 ('transactions', 'fk_transactions_subscription_id_subscriptions', ['sub_account_id', 'subscription_id'],
  'subscriptions', ['sub_account_id', 'id'], 'SET NULL (subscription_id)'),
 ('user_agency_memberships', 'fk_user_agency_memberships_user_id_users', ['agency_id', 'user_id'], 'users',
  ['agency_id', 'id'], 'CASCADE'),
 ('user_feedback', 'fk_user_feedback_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'SET NULL (contact_id)'),
 ('user_feedback', 'fk_user_feedback_sales_call_id_sales_calls', ['sub_account_id', 'sales_call_id'], 'sales_calls',
  ['sub_account_id', 'id'], 'SET NULL (sales_call_id)'),
 ('webhook_logs', 'fk_webhook_logs_webhook_id_webhooks', ['sub_account_id', 'webhook_id'], 'webhooks',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('workflow_action_executions', 'fk_workflow_action_executions_workflow_action_id_workflow_actions',
  ['sub_account_id', 'workflow_action_id'], 'workflow_actions', ['sub_account_id', 'id'],
  'SET NULL (workflow_action_id)'),
 ('workflow_action_executions', 'fk_workflow_action_executions_workflow_execution_id_workflow_executions',
  ['sub_account_id', 'workflow_execution_id'], 'workflow_executions', ['sub_account_id', 'id'], 'CASCADE'),
 ('workflow_actions', 'fk_workflow_actions_parent_action_id_workflow_actions', ['sub_account_id', 'parent_action_id'],
  'workflow_actions', ['sub_account_id', 'id'], 'CASCADE'),
 ('workflow_actions', 'fk_workflow_actions_workflow_id_workflows', ['sub_account_id', 'workflow_id'], 'workflows',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('workflow_executions', 'fk_workflow_executions_contact_id_contacts', ['sub_account_id', 'contact_id'], 'contacts',
  ['sub_account_id', 'id'], 'CASCADE'),
 ('workflow_executions', 'fk_workflow_executions_current_action_id_workflow_actions',
  ['sub_account_id', 'current_action_id'], 'workflow_actions', ['sub_account_id', 'id'],
  'SET NULL (current_action_id)'),
 ('workflow_executions', 'fk_workflow_executions_workflow_id_workflows', ['sub_account_id', 'workflow_id'],
  'workflows', ['sub_account_id', 'id'], 'CASCADE'),
 ('workflow_triggers', 'fk_workflow_triggers_workflow_id_workflows', ['sub_account_id', 'workflow_id'], 'workflows',
  ['sub_account_id', 'id'], 'CASCADE')]

# a user referenced by a sub-account's row must be able to act in that sub-account (a member of it, or of its
# agency); on an agency-level row, a user of that agency
MEMBER_REFS = {
    "appointments": ["assigned_user_id"],
    "calendars": ["user_id"],
    "contacts": ["assigned_user_id"],
    "conversations": ["assigned_user_id"],
    "handoffs": ["assigned_user_id", "claimed_by", "resolved_by"],
    "message_campaigns": ["created_by_user_id"],
    "notes": ["user_id"],
    "opportunities": ["assigned_user_id"],
    "opportunity_stage_history": ["changed_by_user_id"],
    "report_templates": ["created_by_user_id"],
    "sales_calls": ["user_id"],
    "tasks": ["assigned_user_id", "created_by_user_id"],
    "user_feedback": ["user_id"],
}
# a referenced row of an agency-level table whose tenant a key cannot prove: of the row's own agency (a system
# role, with no agency, fits every agency) and, when both name a sub-account, of the same sub-account
AGENCY_REFS = {
    "financial_records": [("integration_source_id", "integrations")],
    "pipeline_stages": [("custom_stage_id", "custom_stages")],
    "user_agency_memberships": [("role_id", "roles")],
    "user_sub_account_memberships": [("role_id", "roles"), ("user_id", "users")],
    "users": [("role_id", "roles")],
}

FUNCTIONS_SQL = """
CREATE FUNCTION lp_user_can_act_in(p_user uuid, p_sub_account uuid, p_agency uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT CASE WHEN p_sub_account IS NULL THEN
      EXISTS (SELECT 1 FROM users u WHERE u.id = p_user AND u.agency_id = p_agency)
    ELSE
      EXISTS (SELECT 1 FROM user_sub_account_memberships m WHERE m.user_id = p_user AND m.sub_account_id = p_sub_account)
      OR EXISTS (SELECT 1 FROM user_agency_memberships m JOIN sub_accounts s ON s.agency_id = m.agency_id
                 WHERE m.user_id = p_user AND s.id = p_sub_account)
    END
$$;

-- raised as a foreign-key violation: to a caller a foreign id is exactly as absent as a random one
CREATE FUNCTION lp_refuse_reference(p_table text, p_column text, p_value text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', p_table,
      'fk_' || p_table || '_' || p_column || '_tenant'
    USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_' || p_table || '_' || p_column || '_tenant',
          TABLE = p_table, COLUMN = p_column,
          DETAIL = format('Key (%s)=(%s) is not present in this tenant.', p_column, p_value);
END $$;

CREATE FUNCTION lp_check_member_refs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  new_row jsonb := to_jsonb(NEW);
  old_row jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) ELSE '{}'::jsonb END;
  col text;
BEGIN
  FOREACH col IN ARRAY TG_ARGV LOOP
    -- an unchanged reference stays valid (a user who left keeps their history)
    CONTINUE WHEN new_row ->> col IS NULL OR new_row ->> col IS NOT DISTINCT FROM old_row ->> col;
    IF NOT lp_user_can_act_in((new_row ->> col)::uuid, (new_row ->> 'sub_account_id')::uuid,
                              (new_row ->> 'agency_id')::uuid) THEN
      PERFORM lp_refuse_reference(TG_TABLE_NAME, col, new_row ->> col);
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

CREATE FUNCTION lp_check_agency_refs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  new_row jsonb := to_jsonb(NEW);
  old_row jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) ELSE '{}'::jsonb END;
  row_sub uuid := (new_row ->> 'sub_account_id')::uuid;
  row_agency uuid := coalesce((new_row ->> 'agency_id')::uuid,
                              (SELECT s.agency_id FROM sub_accounts s WHERE s.id = row_sub));
  ref jsonb;
  i int := 0;
BEGIN
  WHILE i < TG_NARGS LOOP
    IF new_row ->> TG_ARGV[i] IS NOT NULL
       AND new_row ->> TG_ARGV[i] IS DISTINCT FROM old_row ->> TG_ARGV[i] THEN
      EXECUTE format('SELECT jsonb_build_object(''agency_id'', agency_id, ''sub_account_id'', %s) FROM %I WHERE id = $1',
                     CASE WHEN EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = 'public'
                                       AND c.table_name = TG_ARGV[i + 1] AND c.column_name = 'sub_account_id')
                          THEN 'sub_account_id' ELSE 'NULL::uuid' END, TG_ARGV[i + 1])
        INTO ref USING (new_row ->> TG_ARGV[i])::uuid;
      -- a missing row is the plain foreign key's to refuse
      IF ref IS NOT NULL AND NOT (
           (ref ->> 'agency_id' IS NULL AND TG_ARGV[i + 1] = 'roles')
           OR ((ref ->> 'agency_id')::uuid = row_agency
               AND (ref ->> 'sub_account_id' IS NULL OR row_sub IS NULL
                    OR (ref ->> 'sub_account_id')::uuid = row_sub))) THEN
        PERFORM lp_refuse_reference(TG_TABLE_NAME, TG_ARGV[i], new_row ->> TG_ARGV[i]);
      END IF;
    END IF;
    i := i + 2;
  END LOOP;
  RETURN NULL;
END $$;
"""


def _key(table: str, name: str, columns: list[str], target: str, target_columns: list[str],
         ondelete: str | None) -> None:
    op.create_foreign_key(op.f(name), table, target, columns, target_columns, ondelete=ondelete)


def upgrade() -> None:
    for table, name, columns in UNIQUES:
        op.create_unique_constraint(op.f(name), table, columns)
    for table, name, *_ in OLD_KEYS:
        op.drop_constraint(op.f(name), table, type_="foreignkey")
    for key in NEW_KEYS:
        _key(*key)
    for table, name, _ in DROPPED_INDEXES:
        op.drop_index(name, table_name=table)
    op.execute(FUNCTIONS_SQL)
    for table, columns in MEMBER_REFS.items():
        op.execute(f"CREATE TRIGGER tenant_member_refs AFTER INSERT OR UPDATE OF {', '.join(columns)} ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION lp_check_member_refs({', '.join(repr(c) for c in columns)})")
    for table, refs in AGENCY_REFS.items():
        args = ", ".join(f"'{column}', '{target}'" for column, target in refs)
        op.execute(f"CREATE TRIGGER tenant_agency_refs AFTER INSERT OR UPDATE OF "
                   f"{', '.join(column for column, _ in refs)} ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION lp_check_agency_refs({args})")


def downgrade() -> None:
    for table in AGENCY_REFS:
        op.execute(f"DROP TRIGGER tenant_agency_refs ON {table}")
    for table in MEMBER_REFS:
        op.execute(f"DROP TRIGGER tenant_member_refs ON {table}")
    for fn in ("lp_check_agency_refs()", "lp_check_member_refs()", "lp_refuse_reference(text, text, text)",
               "lp_user_can_act_in(uuid, uuid, uuid)"):
        op.execute(f"DROP FUNCTION {fn}")
    for table, name, columns in DROPPED_INDEXES:
        op.create_index(name, table, columns)
    for table, name, *_ in NEW_KEYS:
        op.drop_constraint(op.f(name), table, type_="foreignkey")
    for key in OLD_KEYS:
        _key(*key)
    for table, name, _ in UNIQUES:
        op.drop_constraint(op.f(name), table, type_="unique")
